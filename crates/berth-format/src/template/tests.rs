use super::*;
use serde_json::json;

fn r(t: &str, v: &Value) -> String {
    Template::parse(t).unwrap().render(v).unwrap()
}

#[test]
fn fields_and_printing() {
    let v = json!({"Names":"web","State":{"Running":true,"Pid":42},
        "Config":{"Labels":{"b":"2","a":"1"},"Env":["A=1","B=2"],"Cmd":null}});
    assert_eq!(r("{{.Names}}", &v), "web");
    assert_eq!(r("{{.State.Pid}} {{.State.Running}}", &v), "42 true");
    assert_eq!(r("{{.Config.Labels}}", &v), "map[a:1 b:2]");
    assert_eq!(r("{{.Config.Env}}", &v), "[A=1 B=2]");
    assert_eq!(
        r("{{.Missing}}|{{.Config.Cmd}}", &v),
        "<no value>|<no value>"
    );
    assert_eq!(r("{{.Missing.Deeper}}", &v), "<no value>");
    assert_eq!(r("{{ . }}", &json!("x")), "x");
    assert_eq!(r("{{json .Config.Env}}", &v), r#"["A=1","B=2"]"#);
    assert_eq!(r("{{json .Config.Cmd}}", &v), "null");
}

#[test]
fn control_structures() {
    let v = json!({"L":{"b":"2","a":"1"},"E":["x","y"],"T":true,"Z":"","N":[]});
    assert_eq!(
        r("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", &v),
        "a=1;b=2;"
    );
    assert_eq!(r("{{range .E}}<{{.}}>{{end}}", &v), "<x><y>");
    assert_eq!(
        r("{{range $i, $e := .E}}{{$i}}{{$e}} {{end}}", &v),
        "0x 1y "
    );
    assert_eq!(r("{{range .N}}x{{else}}empty{{end}}", &v), "empty");
    assert_eq!(
        r(
            "{{range .E}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}",
            &v
        ),
        "x"
    );
    assert_eq!(r("{{if .T}}yes{{else}}no{{end}}", &v), "yes");
    assert_eq!(r("{{if .Z}}a{{else if .T}}b{{else}}c{{end}}", &v), "b");
    assert_eq!(r("{{with .L}}{{.a}}{{end}}", &v), "1");
    assert_eq!(r("{{with .Z}}x{{else}}none{{end}}", &v), "none");
    assert_eq!(r("{{$x := .E}}{{index $x 1}}", &v), "y");
    assert_eq!(r("{{- \"a\" }}  {{- \"b\" -}}  c", &v), "abc");
    assert_eq!(r("a {{/* comment */}}b", &v), "a b");
    assert_eq!(r("{{$.T}}{{range .E}}{{$.T}}{{end}}", &v), "truetruetrue");
}

#[test]
fn functions() {
    let v = json!({"S":"Hello World","E":["a","b"],"L":{"k":"v"},"@labels":{"com.x":"1"}});
    assert_eq!(r("{{join .E \", \"}}", &v), "a, b");
    assert_eq!(
        r("{{lower .S}} {{upper .S}}", &v),
        "hello world HELLO WORLD"
    );
    assert_eq!(r("{{title \"foo bar-baz\"}}", &v), "Foo Bar-Baz");
    assert_eq!(r("{{truncate .S 5}}", &v), "Hello");
    assert_eq!(r("{{pad .S 1 2}}|", &v), " Hello World  |");
    assert_eq!(r("{{split .S \" \"}}", &v), "[Hello World]");
    assert_eq!(r("{{index (split .S \" \") 1}}", &v), "World");
    assert_eq!(r("{{println .S}}", &v), "Hello World\n");
    assert_eq!(r("{{.S | printf \"%q\"}}", &v), "\"Hello World\"");
    assert_eq!(
        r("{{printf \"%-6s|%3d|%v\" \"ab\" 7 .E}}", &v),
        "ab    |  7|[a b]"
    );
    assert_eq!(r("{{len .E}} {{index .L \"k\"}}", &v), "2 v");
    assert_eq!(r("{{.Label \"com.x\"}}|{{.Label \"no\"}}|", &v), "1||");
    assert_eq!(
        r("{{json .}}", &v),
        r#"{"E":["a","b"],"L":{"k":"v"},"S":"Hello World"}"#
    );
    assert_eq!(r("{{if and .S (not .Z)}}y{{end}}", &v), "y");
    assert_eq!(r("{{if or .Z .S}}y{{end}}", &v), "y");
    assert_eq!(r("{{if ne (len .E) 3}}y{{end}}", &v), "y");
    assert_eq!(r("{{if lt 1 2}}y{{end}}{{if ge 1.5 2}}n{{end}}", &v), "y");
    assert_eq!(r("{{slice .S 0 4}}", &v), "Hell");
    assert_eq!(r("{{json \"<&>\"}}", &v), "\"<&>\"");
}

#[test]
fn errors_are_reported() {
    for bad in [
        "{{.A",
        "{{if .A}}x",
        "{{end}}",
        "{{else}}",
        "{{\"x}}",
        "{{template \"a\"}}",
    ] {
        assert!(Template::parse(bad).is_err(), "{bad}");
    }
    let t = Template::parse("{{nosuch .A}}").unwrap();
    assert!(t.render(&json!({})).is_err());
    let t = Template::parse("{{.A.B}}").unwrap();
    assert!(t.render(&json!({"A":"s"})).is_err());
}

#[test]
fn headers() {
    let t = Template::parse("{{.ID}}\t{{.Names}}\t{{.Label \"x\"}}\t{{upper .Image}}").unwrap();
    let h = t.render_header(&|f| f.to_uppercase()).unwrap();
    assert_eq!(h, "ID\tNAMES\tLABEL\tIMAGE");
}

#[test]
fn floats_print_as_go() {
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(1e21), "1e+21");
    assert_eq!(go_float(1e6), "1e+06");
    assert_eq!(go_float(1234567.0), "1.234567e+06");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(123456.0), "123456");
}
