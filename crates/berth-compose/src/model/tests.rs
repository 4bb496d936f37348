use super::*;

#[test]
fn durations_round_trip_like_go() {
    assert_eq!(
        parse_duration("90s").map(format_duration).as_deref(),
        Some("1m30s")
    );
    assert_eq!(
        parse_duration("1m").map(format_duration).as_deref(),
        Some("1m0s")
    );
    assert_eq!(
        parse_duration("1h").map(format_duration).as_deref(),
        Some("1h0m0s")
    );
    assert_eq!(
        parse_duration("500ms").map(format_duration).as_deref(),
        Some("500ms")
    );
    assert_eq!(
        parse_duration("1.5s").map(format_duration).as_deref(),
        Some("1.5s")
    );
    assert_eq!(
        parse_duration("0s").map(format_duration).as_deref(),
        Some("0s")
    );
    assert_eq!(parse_duration("10"), None);
    assert_eq!(parse_duration("1x"), None);
}

#[test]
fn sizes() {
    assert_eq!(parse_bytes("64m"), Some(64 << 20));
    assert_eq!(parse_bytes("1g"), Some(1 << 30));
    assert_eq!(parse_bytes("1.5k"), Some(1536));
    assert_eq!(parse_bytes("100"), Some(100));
    assert_eq!(parse_bytes("64mb"), Some(64 << 20));
    assert_eq!(parse_bytes("x"), None);
}

#[test]
fn shell_split() {
    assert_eq!(
        split_shell(r#"echo "a b" c\ d 'e f'"#).unwrap(),
        vec!["echo", "a b", "c d", "e f"]
    );
    assert!(split_shell("a 'b").is_none());
}
