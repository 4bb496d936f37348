use super::*;

fn fake_squashfs(len: usize, used: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[0..4].copy_from_slice(SQUASHFS_MAGIC);
    v[40..48].copy_from_slice(&used.to_le_bytes());
    v
}

#[test]
fn write_then_read() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.sif");
    write_sif(
        &p,
        &[
            NewObject {
                data_type: DataType::Deffile,
                name: String::new(),
                data: ObjectData::Bytes(b"Bootstrap: scratch\n".to_vec()),
                partition: None,
            },
            NewObject {
                data_type: DataType::Partition,
                name: "rootfs".into(),
                data: ObjectData::Bytes(fake_squashfs(5000, 4096)),
                partition: Some((FS_SQUASH, PART_PRIMSYS, host_arch_code())),
            },
        ],
    )
    .unwrap();
    let raw = std::fs::read(&p).unwrap();
    assert!(raw.starts_with(LAUNCH_SCRIPT.as_bytes()));
    let s = Sif::open(&p).unwrap();
    assert_eq!(s.header.launch, LAUNCH_SCRIPT);
    assert_eq!(s.descriptors.len(), 2);
    let part = s.rootfs_partition().unwrap();
    assert_eq!(part.offset % 4096, 0);
    assert_eq!(part.size, 5000);
    assert_eq!(part.id, 2);
    assert_eq!(
        s.object_of(DataType::Deffile).unwrap().unwrap(),
        b"Bootstrap: scratch\n"
    );
    assert_eq!(s.header.descriptors_free, 46);

    // Truncated: refused, naming the problem.
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(raw.len() as u64 - 100).unwrap();
    let e = Sif::open(&p).unwrap_err().to_string();
    assert!(e.contains("truncated"), "{e}");
    // Corrupted magic.
    let mut bad = raw.clone();
    bad[33] = b'X';
    std::fs::write(&p, &bad).unwrap();
    let e = Sif::open(&p).unwrap_err().to_string();
    assert!(e.contains("not a SIF image"), "{e}");
    // Squashfs superblock says more bytes than the partition holds.
    let mut bad = raw.clone();
    let off = usize::try_from(part.offset).unwrap();
    bad[off + 40..off + 48].copy_from_slice(&9999u64.to_le_bytes());
    std::fs::write(&p, &bad).unwrap();
    let e = Sif::open(&p).unwrap_err().to_string();
    assert!(e.contains("squashfs"), "{e}");
    // Short file.
    std::fs::write(&p, b"#!/usr/bin/env run-singularity\n").unwrap();
    assert!(Sif::open(&p).unwrap_err().to_string().contains("truncated"));
}
