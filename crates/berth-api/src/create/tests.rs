use super::host::{health, mount_flag, publish_flags};
use berth_engine::health::HealthConfig;
use bollard_stubs::models::{HostConfig, Mount};

#[test]
fn port_bindings_become_publish_flags() {
    let h: HostConfig = serde_json::from_str(
        r#"{"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
             "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}], "9000/tcp": null}}"#,
    )
    .unwrap();
    assert_eq!(
        publish_flags(&h),
        vec!["127.0.0.1::53/udp", "8080:80/tcp", "9000/tcp"]
    );
}

#[test]
fn mounts_become_mount_flags() {
    let m: Mount = serde_json::from_str(
        r#"{"Type": "bind", "Source": "/srv", "Target": "/data", "ReadOnly": true}"#,
    )
    .unwrap();
    assert_eq!(
        mount_flag(&m).unwrap(),
        "type=bind,source=/srv,target=/data,readonly"
    );
    let m: Mount = serde_json::from_str(r#"{"Type": "npipe", "Target": "/x"}"#).unwrap();
    assert!(mount_flag(&m).is_err());
}

#[test]
fn health_merges_over_the_image() {
    let image = HealthConfig {
        test: vec!["CMD".into(), "true".into()],
        interval: 5,
        ..Default::default()
    };
    let body: bollard_stubs::models::HealthConfig =
        serde_json::from_str(r#"{"Interval": 7, "Timeout": 0}"#).unwrap();
    let h = health(Some(image.clone()), Some(&body)).unwrap();
    assert_eq!(h.test, image.test);
    assert_eq!(h.interval, 7);
    let none: bollard_stubs::models::HealthConfig =
        serde_json::from_str(r#"{"Test": ["NONE"]}"#).unwrap();
    assert!(health(Some(image), Some(&none)).is_none());
}
