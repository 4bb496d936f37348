//! Unit tests of the canonical forms.

use super::*;

#[test]
fn ports_short_syntax() {
    assert_eq!(
        parse_port("80").unwrap(),
        vec![(None, None, 80, "tcp".into())]
    );
    assert_eq!(
        parse_port("127.0.0.1:8000-8001:80-81/udp").unwrap(),
        vec![
            (
                Some("127.0.0.1".into()),
                Some("8000".into()),
                80,
                "udp".into()
            ),
            (
                Some("127.0.0.1".into()),
                Some("8001".into()),
                81,
                "udp".into()
            )
        ]
    );
    assert_eq!(
        parse_port("8000-8010:80").unwrap(),
        vec![(None, Some("8000-8010".into()), 80, "tcp".into())]
    );
    assert_eq!(
        parse_port("[::1]:80:81").unwrap(),
        vec![(Some("::1".into()), Some("80".into()), 81, "tcp".into())]
    );
    assert_eq!(parse_port("80:x").unwrap_err(), "invalid port \"80:x\"");
    assert!(parse_port("80/foo").is_err());
    assert!(parse_port("1-3:1-2").is_err());
}

#[test]
fn joins_clean() {
    assert_eq!(
        clean_join(Path::new("/a/b"), "./c/../d"),
        PathBuf::from("/a/b/d")
    );
    assert_eq!(clean_join(Path::new("/a/b"), "../x"), PathBuf::from("/a/x"));
    assert_eq!(clean_join(Path::new("/a/b"), "/abs"), PathBuf::from("/abs"));
}
