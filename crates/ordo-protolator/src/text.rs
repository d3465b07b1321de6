//! JSON text exactly as configtxlator prints it: Go's `encoding/json` encoder with
//! `SetIndent("", "\t")` and HTML escaping on, over a tree whose object keys Go sorts.

use serde_json::Value;

/// Writes `value` the way `configtxlator proto_decode` does, so the result can be compared byte
/// for byte with Fabric's output:
///
/// * one TAB per nesting level, `"key": value`, elements separated by `,` and a newline, empty
///   objects and arrays as `{}` and `[]`;
/// * the keys of every object sorted by their UTF-8 bytes (so `TransientMap` before `input`);
/// * strings escaped as Go does: `\"`, `\\`, `\n`, `\r`, `\t`, every other control character as
///   `\u00xx`, `<`, `>`, `&`, U+2028 and U+2029 as `\u` escapes, everything else raw UTF-8;
/// * a single newline at the end.
///
/// Numbers are printed as `serde_json` prints them. [`crate::decode`] only ever produces integers,
/// which both print identically; a float put into the value by hand may print differently from Go.
pub fn to_json_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_value(out, item, depth + 1);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.push_str("{}");
                return;
            }
            // Go sorts map keys as byte strings; Rust's `str` ordering is the same.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, depth + 1);
            }
            newline(out, depth);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push('\t');
    }
}

fn write_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Go (before 1.22) has no short form for \b and \f: they get \u0008 and \u000c too.
            '\u{0}'..='\u{1f}' | '<' | '>' | '&' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize & 0xf] as char);
                out.push(HEX[b as usize & 0xf] as char);
            }
            // Line and paragraph separators are escaped so the output is safe inside JavaScript.
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn indents_with_tabs_and_sorts_keys() {
        let v = json!({"b": [1, {"y": null, "x": true}], "a": {}, "TransientMap": [], "c": "s"});
        assert_eq!(
            to_json_string(&v),
            "{\n\t\"TransientMap\": [],\n\t\"a\": {},\n\t\"b\": [\n\t\t1,\n\t\t{\n\t\t\t\"x\": true,\n\t\t\t\"y\": null\n\t\t}\n\t],\n\t\"c\": \"s\"\n}\n"
        );
    }

    #[test]
    fn escapes_strings_like_go_encoding_json() {
        let v = json!("a<b>&c\"d\\e\u{1}\u{8}\u{c}\n\r\t \u{7f} é \u{2028}\u{2029} 😀 /");
        assert_eq!(
            to_json_string(&v),
            "\"a\\u003cb\\u003e\\u0026c\\\"d\\\\e\\u0001\\u0008\\u000c\\n\\r\\t \u{7f} é \\u2028\\u2029 😀 /\"\n"
        );
    }

    #[test]
    fn escapes_keys_too() {
        let v = json!({"<k>": 1});
        assert_eq!(to_json_string(&v), "{\n\t\"\\u003ck\\u003e\": 1\n}\n");
    }
}
