//! Kubernetes' naming rules, and the DNS names a node's Service gets: the name other orderers
//! and clients dial, which the node's TLS certificate must name (Ordo, as Fabric, checks the
//! server's certificate against the host it dialled).

/// An RFC 1035 label, as a Service's name must be: at most 63 lower-case letters, digits and
/// '-', starting with a letter and ending with a letter or digit.
pub fn is_dns_1035_label(s: &str) -> bool {
    is_dns_1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// An RFC 1123 label, as a namespace's name must be: as an RFC 1035 label, but it may start
/// with a digit.
pub fn is_dns_1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// An RFC 1123 subdomain, as most objects' names (a storage class's) must be: RFC 1123 labels
/// joined by '.', at most 253 in all.
pub fn is_dns_1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_1123_label)
}

/// A label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a
/// letter or digit (empty is allowed by Kubernetes but means nothing as a zone).
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A key of a Secret's or ConfigMap's `data`: letters, digits, '-', '_' and '.', at most 253,
/// not `.`, `..` or starting with `..`.
pub fn is_data_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with("..")
        && s != "."
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The names that resolve to Service `service` of namespace `namespace` in a cluster whose DNS
/// domain is `cluster_domain`, the one that works from anywhere in the cluster first and the
/// bare name, which only resolves inside the namespace, last.
pub fn service_dns_names(service: &str, namespace: &str, cluster_domain: &str) -> [String; 4] {
    [
        format!("{service}.{namespace}.svc.{cluster_domain}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// Whether DNS subject alternative name `san` covers `host` (case-insensitive; a wildcard
/// stands for exactly one leftmost label, as in RFC 6125).
pub fn san_covers(san: &str, host: &str) -> bool {
    let (san, host) = (san.to_ascii_lowercase(), host.to_ascii_lowercase());
    match san.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == parent),
        None => san == host,
    }
}

/// The most widely resolvable of `candidates` that one of `sans` covers.
pub fn first_covered<'a>(candidates: &'a [String], sans: &[String]) -> Option<&'a str> {
    candidates
        .iter()
        .find(|c| sans.iter().any(|s| san_covers(s, c)))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names() {
        assert!(is_dns_1035_label("orderer1"));
        assert!(!is_dns_1035_label("1orderer"));
        assert!(!is_dns_1035_label("Orderer1"));
        assert!(!is_dns_1035_label("orderer1.example.com"));
        assert!(!is_dns_1035_label("orderer-"));
        assert!(!is_dns_1035_label(&"a".repeat(64)));
        assert!(is_dns_1123_label("1ordo"));
        assert!(is_label_value("eu-west-1a"));
        assert!(is_label_value("Zone_A.1"));
        assert!(!is_label_value("-a"));
        assert!(is_data_key("cacerts.ca.example.com-cert.pem"));
        assert!(!is_data_key("cacerts/ca.pem"));
        assert!(!is_data_key("..data"));
    }

    #[test]
    fn the_fully_qualified_service_name_is_preferred_when_the_certificate_names_it() {
        let names = service_dns_names("orderer1", "ordo", "cluster.local");
        let cryptogen = ["orderer1.example.com".to_string(), "orderer1".to_string()];
        assert_eq!(first_covered(&names, &cryptogen), Some("orderer1"));
        let wildcard = [
            "*.ordo.svc.cluster.local".to_string(),
            "orderer1".to_string(),
        ];
        assert_eq!(
            first_covered(&names, &wildcard),
            Some("orderer1.ordo.svc.cluster.local")
        );
        let demo = ["localhost".to_string()];
        assert_eq!(first_covered(&names, &demo), None);
        assert!(!san_covers(
            "*.svc.cluster.local",
            "orderer1.ordo.svc.cluster.local"
        ));
        assert!(san_covers("ORDERER1", "orderer1"));
    }
}
