use std::net::Ipv4Addr;

use berth_store::Store;

use super::*;

fn net(name: &str, id: &str, third: u8) -> Network {
    Network {
        name: name.into(),
        id: id.into(),
        driver: "bridge".into(),
        bridge: format!("br-{name}"),
        subnet: format!("10.250.{third}.0/24").parse().unwrap(),
        gateway: Ipv4Addr::new(10, 250, third, 1),
        internal: false,
        created: 0,
    }
}

/// Networks resolve as containers and images do: full id, then name, then a unique id
/// prefix; an ambiguous prefix says so instead of "not found".
#[test]
fn networks_resolve_by_id_name_and_unique_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    migrate(&store).unwrap();
    let db = store.db();
    insert_network(db, &net("front", "1a2b", 1)).unwrap();
    insert_network(db, &net("back", "1a3c", 2)).unwrap();
    insert_network(db, &net("1a", "ffff", 3)).unwrap();
    let find = |w: &str| find_network(db, w).map(|n| n.map(|n| n.name));
    assert_eq!(find("1a2b").unwrap().as_deref(), Some("front"));
    assert_eq!(find("back").unwrap().as_deref(), Some("back"));
    assert_eq!(find("1a3").unwrap().as_deref(), Some("back"));
    // A name beats an id prefix.
    assert_eq!(find("1a").unwrap().as_deref(), Some("1a"));
    assert_eq!(find("f").unwrap().as_deref(), Some("1a"));
    assert_eq!(find("zz").unwrap(), None);
    let e = find("1").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("multiple IDs found with provided prefix: 1"),
        "{e}"
    );
}
