//! Measure `setup` + `teardown` of one default-bridge container (root only):
//! `cargo run --release -p berth-net --example setup_cost -- /tmp/some-root 50`
use std::time::Instant;

use berth_net::{Attachment, NetConfig, NetworkMode};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = args.get(1).expect("usage: setup_cost ROOT [N]");
    let n: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(50);
    let store = berth_store::Store::open(root).expect("store");
    let dir = std::path::Path::new(root).join("bench-ctr");
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = NetConfig {
        container_id: String::new(),
        container_name: "bench".into(),
        hostname: "bench".into(),
        domainname: String::new(),
        mode: NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec![],
        }]),
        publish: vec![],
        publish_all: vec![],
        dns: vec![],
        dns_search: vec![],
        dns_options: vec![],
        add_hosts: vec![],
        ipv4_address: String::new(),
        mac_address: String::new(),
        port_group: None,
        port_wait_healthy: false,
    };
    let (mut s_tot, mut t_tot) = (0f64, 0f64);
    for i in 0..n {
        cfg.container_id = format!("{:064x}", i + 1);
        let t0 = Instant::now();
        berth_net::setup(&store, &cfg, &dir).expect("setup");
        let t1 = Instant::now();
        berth_net::teardown(&store, &cfg.container_id).expect("teardown");
        s_tot += (t1 - t0).as_secs_f64();
        t_tot += t1.elapsed().as_secs_f64();
    }
    println!(
        "setup {:.2} ms, teardown {:.2} ms (mean of {n})",
        s_tot * 1000.0 / n as f64,
        t_tot * 1000.0 / n as f64
    );
}
