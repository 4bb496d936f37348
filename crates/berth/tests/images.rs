//! Image commands end to end: load, save, import, images, tag, rmi, image inspect/prune.

mod common;

use common::*;

#[test]
fn rootfs_builder_works() {
    let t = busybox_rootfs();
    assert!(t.len() > 1_000_000);
}
