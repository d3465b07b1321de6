//! osnadmin's channel participation calls on an orderer's admin endpoint — join with a config
//! block, list all channels or one, remove — and osnadmin's way of printing the answer:
//! `Status: N` (unless hidden) and then the JSON body indented with tabs, as Go's
//! `json.Indent` does, so scripts written against osnadmin read the same text.

use ordo_client::HttpResponse;

use crate::AdminError;
use crate::endpoint::Endpoint;

/// `POST /participation/v1/channels` with `config_block` (osnadmin channel join).
pub async fn join(admin: &Endpoint, config_block: &[u8]) -> Result<HttpResponse, AdminError> {
    Ok(admin.http().join(config_block).await?)
}

/// `GET /participation/v1/channels`, or `/participation/v1/channels/{channel}` with a channel
/// (osnadmin channel list).
pub async fn list(admin: &Endpoint, channel: Option<&str>) -> Result<HttpResponse, AdminError> {
    let path = match channel {
        Some(c) => format!("/participation/v1/channels/{c}"),
        None => "/participation/v1/channels".to_string(),
    };
    Ok(admin.http().get(&path).await?)
}

/// `DELETE /participation/v1/channels/{channel}` (osnadmin channel remove).
pub async fn remove(admin: &Endpoint, channel: &str) -> Result<HttpResponse, AdminError> {
    Ok(admin.http().remove(channel).await?)
}

/// The `consensusRelation` and `status` the node reports for `channel`; `None` when it does not
/// have the channel (404).
pub async fn relation(
    admin: &Endpoint,
    channel: &str,
) -> Result<Option<(String, String)>, AdminError> {
    let r = list(admin, Some(channel)).await?;
    match r.status {
        200 => {
            let v = r.json()?;
            let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            Ok(Some((field("consensusRelation"), field("status"))))
        }
        404 => Ok(None),
        status => Err(AdminError::Participation {
            addr: admin.addr.to_string(),
            status,
            body: String::from_utf8_lossy(&r.body).into_owned(),
        }),
    }
}

/// What osnadmin prints for an answer: `Status: N` unless `show_status` is false, then the body
/// indented (a body that is not JSON is printed as it came).
pub fn osnadmin_output(status: u16, body: &[u8], show_status: bool) -> String {
    let mut out = String::new();
    if show_status {
        out.push_str(&format!("Status: {status}\n"));
    }
    if !body.is_empty() {
        match go_json_indent(body) {
            Some(text) => out.push_str(&text),
            None => out.push_str(&String::from_utf8_lossy(body)),
        }
        out.push('\n');
    }
    out
}

/// Go's `json.Indent(dst, src, "", "\t")`: insignificant whitespace replaced by one element
/// per line, `": "` after keys, empty objects and arrays kept as `{}` and `[]`, leading
/// whitespace dropped and trailing whitespace kept. `None` if `src` is not one JSON value.
pub fn go_json_indent(src: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(src).ok()?;
    let body = text.trim_start().trim_end();
    let trailing = &text[text.trim_end().len()..];
    if !is_json(body) {
        return None;
    }
    let mut out = String::with_capacity(body.len() * 2);
    let mut depth = 0usize;
    // An opening bracket waits to see whether its container is empty before breaking the line.
    let mut pending_break = false;
    let (mut in_string, mut escaped) = (false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n('\t', depth));
    };
    for ch in body.chars() {
        if in_string {
            out.push(ch);
            match (escaped, ch) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if ch.is_ascii_whitespace() {
            continue;
        }
        if pending_break && ch != '}' && ch != ']' {
            newline(&mut out, depth);
        }
        match ch {
            '{' | '[' => {
                out.push(ch);
                depth += 1;
                pending_break = true;
                continue;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if !pending_break {
                    newline(&mut out, depth);
                }
                out.push(ch);
            }
            ',' => {
                out.push(ch);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '"' => {
                in_string = true;
                out.push(ch);
            }
            _ => out.push(ch),
        }
        pending_break = false;
    }
    out.push_str(trailing);
    Some(out)
}

/// Whether `s` is exactly one JSON value (what `json.Indent` insists on).
fn is_json(s: &str) -> bool {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    p.value(0) && {
        p.ws();
        p.i == p.s.len()
    }
}

/// A minimal JSON validator (no values are built): the participation API's bodies are small.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

/// Deeper nesting than any participation answer has; bounds the recursion on bad input.
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn value(&mut self, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                if self.eat(b'}') {
                    return true;
                }
                loop {
                    self.ws();
                    if !(self.string() && self.eat(b':') && self.value(depth + 1)) {
                        return false;
                    }
                    if self.eat(b'}') {
                        return true;
                    }
                    if !self.eat(b',') {
                        return false;
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                if self.eat(b']') {
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    if self.eat(b']') {
                        return true;
                    }
                    if !self.eat(b',') {
                        return false;
                    }
                }
            }
            Some(b'"') => self.string(),
            Some(_) => self.scalar(),
            None => false,
        }
    }
    fn string(&mut self) -> bool {
        if self.s.get(self.i) != Some(&b'"') {
            return false;
        }
        self.i += 1;
        while let Some(&b) = self.s.get(self.i) {
            self.i += 1;
            match b {
                b'\\' => self.i += 1,
                b'"' => return true,
                b if b < 0x20 => return false,
                _ => {}
            }
        }
        false
    }
    fn scalar(&mut self) -> bool {
        let start = self.i;
        while self.i < self.s.len() && !b",]}: \t\r\n".contains(&self.s[self.i]) {
            self.i += 1;
        }
        let word = &self.s[start..self.i];
        matches!(word, b"true" | b"false" | b"null")
            || (!word.is_empty()
                && std::str::from_utf8(word).is_ok_and(|w| {
                    w.parse::<f64>().is_ok() && !w.starts_with('+') && !w.ends_with('.')
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osnadmin_prints_fabric_s_fixture_text() {
        // What Fabric's orderer sends, and what osnadmin printed for it (the fixture).
        let body = br#"{"name":"bench","url":"/participation/v1/channels/bench","consensusRelation":"consenter","status":"active","height":1}
"#;
        let expected = "Status: 200\n{\n\t\"name\": \"bench\",\n\t\"url\": \"/participation/v1/channels/bench\",\n\t\"consensusRelation\": \"consenter\",\n\t\"status\": \"active\",\n\t\"height\": 1\n}\n\n";
        assert_eq!(osnadmin_output(200, body, true), expected);
        let fixture = std::fs::read_to_string(ordo_testkit::fixture(
            "participation-api/channel_info_bench_o1.txt",
        ))
        .unwrap();
        assert_eq!(osnadmin_output(200, body, true), fixture);
        let list = br#"{"systemChannel":null,"channels":[{"name":"bench","url":"/participation/v1/channels/bench"}]}"#;
        assert_eq!(
            osnadmin_output(200, list, false),
            "{\n\t\"systemChannel\": null,\n\t\"channels\": [\n\t\t{\n\t\t\t\"name\": \"bench\",\n\t\t\t\"url\": \"/participation/v1/channels/bench\"\n\t\t}\n\t]\n}\n"
        );
    }

    #[test]
    fn empty_containers_strings_and_non_json() {
        assert_eq!(
            go_json_indent(br#" {"a":[],"b":{},"c":"x, {y}: \"z\""} "#).unwrap(),
            "{\n\t\"a\": [],\n\t\"b\": {},\n\t\"c\": \"x, {y}: \\\"z\\\"\"\n} "
        );
        assert_eq!(go_json_indent(b"not json"), None);
        assert_eq!(go_json_indent(b"{\"a\":1"), None);
        assert_eq!(osnadmin_output(204, b"", true), "Status: 204\n");
        assert_eq!(osnadmin_output(500, b"oops", true), "Status: 500\noops\n");
    }
}
