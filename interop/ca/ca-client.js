// Fabric's npm CA client (fabric-ca-client 2.2.20 + fabric-common 2.2.20) against `ordo ca`.
// It shares no code with Ordo. Every step is what the first seed does, plus the failures that
// must look like Fabric CA's.
//   node ca-client.js --url https://localhost:7054 --tls <PEM the server's TLS cert chains to>
'use strict';

const fs = require('fs');
const assert = require('assert');
const crypto = require('crypto');
const FabricCAServices = require('fabric-ca-client');
const {User} = require('fabric-common');

function arg(name) {
	const i = process.argv.indexOf(`--${name}`);
	if (i < 0 || i + 1 >= process.argv.length) {
		throw new Error(`missing --${name}`);
	}
	return process.argv[i + 1];
}

const url = arg('url');
const tlsRoot = fs.readFileSync(arg('tls'), 'utf8');
const tlsOptions = {trustedRoots: [tlsRoot], verify: true};
const ca = new FabricCAServices(url, tlsOptions, 'ca');
const tlsca = new FabricCAServices(url, tlsOptions, 'tlsca');

let steps = 0;
function ok(what) {
	steps++;
	console.log(`ok ${steps} - ${what}`);
}

async function user(name, enrollment) {
	const u = new User(name);
	await u.setEnrollment(enrollment.key, enrollment.certificate, 'OrdererMSP');
	return u;
}

// The Fabric CA error code of a rejected request.
async function failsWith(promise, code, what) {
	try {
		await promise;
	} catch (e) {
		const got = e.errors && e.errors[0] && e.errors[0].code;
		assert.strictEqual(got, code, `${what}: expected code ${code}, got ${e.message}`);
		ok(`${what} fails with code ${code}`);
		return;
	}
	throw new Error(`${what}: expected a failure`);
}

function certOf(pem) {
	return new crypto.X509Certificate(pem);
}

async function main() {
	// The bootstrap admin.
	const adminEnr = await ca.enroll({enrollmentID: 'admin', enrollmentSecret: 'adminpw'});
	assert.ok(adminEnr.key, 'a key is generated');
	assert.match(adminEnr.rootCertificate, /BEGIN CERTIFICATE/);
	const admin = await user('admin', adminEnr);
	ok('enroll the bootstrap admin');

	// osadmin (type admin) and os1 (type orderer, one enrollment: the client's default).
	const osadminpw = await ca.register({enrollmentID: 'osadmin', enrollmentSecret: 'osadminpw', role: 'admin', affiliation: '', maxEnrollments: -1}, admin);
	assert.strictEqual(osadminpw, 'osadminpw');
	const os1pw = await ca.register({enrollmentID: 'os1', role: 'orderer', affiliation: ''}, admin);
	assert.strictEqual(os1pw.length, 12, 'a generated secret');
	ok('register osadmin (admin) and os1 (orderer)');

	const osadminEnr = await ca.enroll({enrollmentID: 'osadmin', enrollmentSecret: 'osadminpw'});
	const os1Enr = await ca.enroll({enrollmentID: 'os1', enrollmentSecret: os1pw});
	const c = certOf(os1Enr.certificate);
	assert.match(c.subject, /CN=os1/);
	assert.match(c.subject, /OU=orderer/);
	assert.match(certOf(osadminEnr.certificate).subject, /OU=admin/);
	assert.ok(c.checkIssued(certOf(os1Enr.rootCertificate)), 'issued by the ca root');
	ok('enroll osadmin and os1 (OU=admin, OU=orderer)');

	// Wrong secret; os1 used its only enrollment.
	await failsWith(ca.enroll({enrollmentID: 'osadmin', enrollmentSecret: 'wrong'}), 20, 'wrong secret');
	await failsWith(ca.enroll({enrollmentID: 'os1', enrollmentSecret: os1pw}), 20, 'exhausted enrollments');

	// os1's TLS certificate from tlsca (its own registry and bootstrap admin), SANs in the CSR
	// (the Node client sends no `hosts`).
	const tlsAdmin = await user('admin', await tlsca.enroll({enrollmentID: 'admin', enrollmentSecret: 'adminpw'}));
	await tlsca.register({enrollmentID: 'os1', enrollmentSecret: 'os1pw', role: 'orderer', affiliation: '', maxEnrollments: 0}, tlsAdmin);
	const {privateKey} = crypto.generateKeyPairSync('ec', {namedCurve: 'P-256'});
	const csr = makeCsr(privateKey, 'os1', ['os1.example.com', 'localhost']);
	const tlsEnr = await tlsca.enroll({enrollmentID: 'os1', enrollmentSecret: 'os1pw', profile: 'tls', csr});
	assert.strictEqual(tlsEnr.key, undefined, 'no key returned when the CSR is given');
	const t = certOf(tlsEnr.certificate);
	assert.match(t.subjectAltName, /DNS:os1\.example\.com/);
	assert.ok(t.checkIssued(certOf(tlsEnr.rootCertificate)));
	assert.ok(!t.checkIssued(certOf(os1Enr.rootCertificate)), 'TLS CA is not the enrollment CA');
	assert.ok(t.keyUsage && t.keyUsage.includes('1.3.6.1.5.5.7.3.1'), 'server auth');
	ok('enroll os1 TLS certificate from tlsca with profile tls');

	// Reenroll the admin, then use the new identity.
	const reEnr = await ca.reenroll(admin);
	assert.notStrictEqual(reEnr.certificate, adminEnr.certificate);
	const admin2 = await user('admin', reEnr);
	ok('reenroll the admin');

	// Revoke osadmin, generate a CRL that lists its certificate.
	const rev = await ca.revoke({enrollmentID: 'osadmin', reason: 'keycompromise'}, admin2);
	assert.strictEqual(rev.result.RevokedCerts.length, 1);
	const serial = rev.result.RevokedCerts[0].Serial;
	ok('revoke osadmin');
	const osadmin = await user('osadmin', osadminEnr);
	await failsWith(ca.newIdentityService().getAll(osadmin), 20, 'a revoked certificate authenticating');
	const crl = await ca.generateCRL({}, admin2);
	const crlDer = Buffer.from(Buffer.from(crl, 'base64').toString('utf8').replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
	assert.ok(crlDer.toString('hex').includes(serial.length % 2 ? `0${serial}` : serial), 'serial in the CRL');
	ok('generate a CRL listing the revoked certificate');

	// Lists.
	const ids = await ca.newIdentityService().getAll(admin2);
	const names = ids.result.identities.map((i) => i.id).sort();
	assert.deepStrictEqual(names, ['admin', 'os1', 'osadmin']);
	const one = await ca.newIdentityService().getOne('os1', admin2);
	assert.strictEqual(one.result.type, 'orderer');
	ok('list identities');
	const affs = await ca.newAffiliationService().getAll(admin2);
	assert.ok(affs.result.affiliations.some((a) => a.name === 'org1'));
	await ca.newAffiliationService().create({name: 'ordererorg', force: true}, admin2);
	ok('list and add affiliations');
	const certs = await ca.newCertificateService().getCertificates({}, admin2);
	assert.strictEqual(certs.result.certs.length, 4, 'admin x2, osadmin, os1');
	const mine = await ca.newCertificateService().getCertificates({id: 'os1'}, admin2);
	assert.strictEqual(mine.result.certs.length, 1);
	ok('list certificates');

	// A registrar rule: os1 is not a registrar.
	const os1 = await user('os1', os1Enr);
	await failsWith(ca.register({enrollmentID: 'x', role: 'client', affiliation: ''}, os1), 71, 'registering without hf.Registrar.Roles');
	await failsWith(ca.register({enrollmentID: 'os1', role: 'orderer', affiliation: ''}, admin2), 74, 'a duplicate registration');

	console.log(`# ${steps} checks passed`);
}

// A PKCS#10 CSR with SANs, built with Node's crypto only (DER by hand).
function makeCsr(privateKey, cn, hosts) {
	const len = (n) => (n < 128 ? Buffer.from([n]) : n < 256 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 255]));
	const tlv = (tag, body) => Buffer.concat([Buffer.from([tag]), len(body.length), body]);
	const seq = (...b) => tlv(0x30, Buffer.concat(b));
	const set = (...b) => tlv(0x31, Buffer.concat(b));
	const oid = (hex) => tlv(0x06, Buffer.from(hex, 'hex'));
	const utf8 = (s) => tlv(0x0c, Buffer.from(s));
	const subject = seq(set(seq(oid('550403'), utf8(cn))));
	const spki = privateKey.export ? crypto.createPublicKey(privateKey).export({type: 'spki', format: 'der'}) : null;
	const san = seq(...hosts.map((h) => tlv(0x82, Buffer.from(h))));
	const ext = seq(seq(oid('551d11'), tlv(0x04, san)));
	const attrs = tlv(0xa0, seq(oid('2a864886f70d01090e'), set(ext)));
	const info = seq(tlv(0x02, Buffer.from([0])), subject, spki, attrs);
	const sig = crypto.sign('sha256', info, privateKey);
	const der = seq(info, seq(oid('2a8648ce3d040302')), tlv(0x03, Buffer.concat([Buffer.from([0]), sig])));
	const b64 = der.toString('base64').match(/.{1,64}/g).join('\n');
	return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`;
}

main().catch((e) => {
	console.error(`not ok - ${e.stack || e}`);
	process.exit(1);
});
