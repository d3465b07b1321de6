//! The policy languages of configtx.yaml: Fabric's signature-policy DSL
//! (`OR('Org1MSP.admin', AND('A.member', 'B.peer'))`, `OutOf(2, ...)`) and ImplicitMeta rules
//! (`ANY Readers`), producing exactly the protobufs Fabric's `policydsl.FromString` and
//! `ImplicitMetaFromString` produce — including the identity order, which follows Fabric's
//! evaluation order (a gate numbers its own principals after its nested gates have numbered
//! theirs) and keeps duplicates.

use ordo_proto::common::msp_principal::Classification;
use ordo_proto::common::signature_policy::{NOutOf, Type};
use ordo_proto::common::{
    ImplicitMetaPolicy, MspPrincipal, MspRole, SignaturePolicy, SignaturePolicyEnvelope,
    implicit_meta_policy,
};
use prost::Message;

/// Parses an ImplicitMeta rule: exactly `<ANY|ALL|MAJORITY> <sub_policy>`, one space.
pub(crate) fn implicit_meta_from_str(rule: &str) -> Result<ImplicitMetaPolicy, String> {
    let tokens: Vec<&str> = rule.split(' ').collect();
    if tokens.len() != 2 {
        return Err(format!(
            "expected two space separated tokens, but got {}",
            tokens.len()
        ));
    }
    let r = match tokens[0] {
        "ANY" => implicit_meta_policy::Rule::Any,
        "ALL" => implicit_meta_policy::Rule::All,
        "MAJORITY" => implicit_meta_policy::Rule::Majority,
        other => {
            return Err(format!(
                "unknown rule type '{other}', expected ALL, ANY, or MAJORITY"
            ));
        }
    };
    Ok(ImplicitMetaPolicy {
        sub_policy: tokens[1].to_string(),
        rule: r as i32,
    })
}

#[derive(Debug)]
enum Arg {
    Principal(String, i32),
    Gate(Gate),
}

#[derive(Debug)]
struct Gate {
    threshold: i64,
    args: Vec<Arg>,
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

fn role_of(name: &str) -> Option<i32> {
    Some(match name {
        "member" => 0,
        "admin" => 1,
        "client" => 2,
        "peer" => 3,
        "orderer" => 4,
        _ => return None,
    })
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with(|c: char| c.is_whitespace()) {
            self.pos += self.s[self.pos..].chars().next().map_or(1, char::len_utf8);
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.s[self.pos..].chars().next()
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(format!(
                "expected '{c}' at offset {} in policy string '{}'",
                self.pos, self.s
            ))
        }
    }

    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let start = self.pos;
        while self.s[self.pos..]
            .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        {
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn gate(&mut self) -> Result<Gate, String> {
        let name = self.word();
        let kind = match name {
            "AND" | "And" | "and" => 'A',
            "OR" | "Or" | "or" => 'O',
            "OutOf" | "outof" | "OUTOF" => 'N',
            "" => return Err(format!("invalid policy string '{}'", self.s)),
            other => return Err(format!("unrecognized token '{other}' in policy string")),
        };
        self.expect('(')?;
        let mut threshold = None;
        if kind == 'N' {
            let num = self.word();
            // govaluate reads numbers as floats; Fabric truncates them to int.
            let t: f64 = num.parse().map_err(|_| format!("unexpected type {num}"))?;
            threshold = Some(t as i64);
            if self.peek() == Some(',') {
                self.pos += 1;
            }
        }
        let mut args = Vec::new();
        loop {
            match self.peek() {
                Some(')') if !args.is_empty() || kind == 'N' => {
                    self.pos += 1;
                    break;
                }
                Some(q @ ('\'' | '"')) => {
                    self.pos += 1;
                    let rest = &self.s[self.pos..];
                    let end = rest
                        .find(q)
                        .ok_or_else(|| format!("unterminated string in '{}'", self.s))?;
                    let text = &rest[..end];
                    self.pos += end + 1;
                    args.push(principal(text)?);
                }
                Some(_) => args.push(Arg::Gate(self.gate()?)),
                None => return Err(format!("unexpected end of policy string '{}'", self.s)),
            }
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {}
                _ => return Err(format!("expected ',' or ')' in policy string '{}'", self.s)),
            }
        }
        let n = args.len() as i64;
        let threshold = match kind {
            'A' => n,
            'O' => 1,
            _ => {
                if n + 1 < 2 {
                    return Err(format!(
                        "expected at least two arguments to NOutOf. Given {}",
                        n + 1
                    ));
                }
                let t = threshold.unwrap_or_default();
                if t < 0 || t > n + 1 {
                    return Err(format!("invalid t-out-of-n predicate, t {t}, n {n}"));
                }
                t
            }
        };
        Ok(Gate { threshold, args })
    }
}

fn principal(text: &str) -> Result<Arg, String> {
    let bad = || format!("unrecognized token '{text}' in policy string");
    let (msp, role) = text.rsplit_once('.').ok_or_else(bad)?;
    let role = role_of(role).ok_or_else(bad)?;
    if msp.is_empty()
        || !msp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(bad());
    }
    Ok(Arg::Principal(msp.to_string(), role))
}

/// Numbers principals in Fabric's order and builds the rule tree.
fn emit(g: &Gate, identities: &mut Vec<MspPrincipal>) -> SignaturePolicy {
    // Nested gates run first (their arguments are evaluated before the gate itself).
    let mut nested: Vec<Option<SignaturePolicy>> = g
        .args
        .iter()
        .map(|a| match a {
            Arg::Gate(inner) => Some(emit(inner, identities)),
            Arg::Principal(..) => None,
        })
        .collect();
    let rules = g
        .args
        .iter()
        .zip(nested.iter_mut())
        .map(|(a, n)| match a {
            Arg::Gate(_) => n.take().unwrap_or_default(),
            Arg::Principal(msp, role) => {
                identities.push(MspPrincipal {
                    principal_classification: Classification::Role as i32,
                    principal: MspRole {
                        msp_identifier: msp.clone(),
                        role: *role,
                    }
                    .encode_to_vec()
                    .into(),
                });
                SignaturePolicy {
                    r#type: Some(Type::SignedBy(identities.len() as i32 - 1)),
                }
            }
        })
        .collect();
    SignaturePolicy {
        r#type: Some(Type::NOutOf(NOutOf {
            n: g.threshold as i32,
            rules,
        })),
    }
}

/// Parses Fabric's signature-policy DSL into a `SignaturePolicyEnvelope`.
pub(crate) fn signature_policy_from_str(s: &str) -> Result<SignaturePolicyEnvelope, String> {
    let mut p = Parser { s, pos: 0 };
    if p.peek().is_none() {
        return Err("Unexpected end of expression".to_string());
    }
    let gate = p.gate()?;
    if p.peek().is_some() {
        return Err(format!("invalid policy string '{s}'"));
    }
    let mut identities = Vec::new();
    let rule = emit(&gate, &mut identities);
    Ok(SignaturePolicyEnvelope {
        version: 0,
        rule: Some(rule),
        identities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(env: &SignaturePolicyEnvelope) -> Vec<(String, i32)> {
        env.identities
            .iter()
            .map(|p| {
                let r = MspRole::decode(p.principal.clone()).unwrap();
                (r.msp_identifier, r.role)
            })
            .collect()
    }

    fn signed(i: i32) -> SignaturePolicy {
        SignaturePolicy {
            r#type: Some(Type::SignedBy(i)),
        }
    }

    fn out_of(n: i32, rules: Vec<SignaturePolicy>) -> SignaturePolicy {
        SignaturePolicy {
            r#type: Some(Type::NOutOf(NOutOf { n, rules })),
        }
    }

    #[test]
    fn nested_gates_number_their_principals_first() {
        // Fabric's TestComplex1.
        let env = signature_policy_from_str("OR('A.member', AND('B.member', 'C.member'))").unwrap();
        assert_eq!(
            ids(&env),
            vec![("B".into(), 0), ("C".into(), 0), ("A".into(), 0)]
        );
        assert_eq!(
            env.rule,
            Some(out_of(
                1,
                vec![signed(2), out_of(2, vec![signed(0), signed(1)])]
            ))
        );
        let env =
            signature_policy_from_str("OR(AND('A.member','B.member'), OR('C.admin','D.member'))")
                .unwrap();
        assert_eq!(
            ids(&env),
            vec![
                ("A".into(), 0),
                ("B".into(), 0),
                ("C".into(), 1),
                ("D".into(), 0)
            ]
        );
    }

    #[test]
    fn fixture_rule_encodes_like_configtxgen() {
        let env =
            signature_policy_from_str("OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')")
                .unwrap();
        let rule = env.rule.unwrap().encode_to_vec();
        assert_eq!(
            hex::encode(rule),
            "120e08011202080012020801120208 02".replace(' ', "")
        );
    }

    #[test]
    fn out_of_duplicates_and_roles() {
        let env =
            signature_policy_from_str("OutOf(2, 'A.member', 'A.member', 'MSP.WITH.DOTS.orderer')")
                .unwrap();
        assert_eq!(ids(&env).len(), 3);
        assert_eq!(ids(&env)[2], ("MSP.WITH.DOTS".into(), 4));
        assert!(signature_policy_from_str("OutOf(3, 'A.member', 'B.member')").is_ok()); // t = n+1 allowed
        assert!(
            signature_policy_from_str("OutOf(4, 'A.member', 'B.member')")
                .unwrap_err()
                .contains("invalid t-out-of-n")
        );
        assert!(
            signature_policy_from_str("OutOf(1)")
                .unwrap_err()
                .contains("at least two arguments")
        );
    }

    #[test]
    fn refuses_what_fabric_refuses() {
        for bad in [
            "",
            "1",
            "'A.member'",
            "OR('Bmember')",
            "OR('A.boss')",
            "XOR('A.member')",
            "OR('A_B.member')",
            "OR('A.member'",
            "OR('A.member') junk",
        ] {
            assert!(signature_policy_from_str(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn implicit_meta_rules() {
        let p = implicit_meta_from_str("ANY Readers").unwrap();
        assert_eq!(p.encode_to_vec(), b"\x0a\x07Readers");
        assert_eq!(implicit_meta_from_str("MAJORITY Admins").unwrap().rule, 2);
        assert!(
            implicit_meta_from_str("ANY  Readers")
                .unwrap_err()
                .contains("got 3")
        );
        assert!(
            implicit_meta_from_str("SOME Readers")
                .unwrap_err()
                .contains("unknown rule type")
        );
    }
}
