use super::*;

const LOLCOW: &str = "BootStrap: debootstrap
OSVersion: bookworm
MirrorURL: http://deb.debian.org/debian/

%runscript
    #!/bin/bash
    if [ $# -ne 2 ]; then
        echo \"Please provide an input and an output file.\"
        exit 1
    fi
    cat $1 | cowsay > $2

%post
    echo \"Hello from inside the container\"
    apt-get -y install fortune cowsay lolcat

%environment
    export PATH=/usr/games:$PATH
    export LC_ALL=C
";

#[test]
fn lolcow() {
    let d = parse(Path::new("Singularity"), LOLCOW, &BuildArgs::new()).unwrap();
    assert_eq!(d.stages.len(), 1);
    let s = d.last();
    assert_eq!(s.bootstrap, Bootstrap::Debootstrap);
    assert_eq!(s.os_version.as_deref(), Some("bookworm"));
    assert_eq!(
        s.mirror_url.as_deref(),
        Some("http://deb.debian.org/debian/")
    );
    assert!(s.runscript.as_ref().unwrap().body.contains("cowsay > $2"));
    assert_eq!(s.runscript.as_ref().unwrap().line, 5);
    assert!(s.post.as_ref().unwrap().body.contains("apt-get"));
    assert!(s.environment.as_ref().unwrap().body.contains("LC_ALL"));
}

#[test]
fn args_labels_files_stages() {
    let text = "%arguments
    VER=3.18
Bootstrap: docker
From: alpine:{{ VER }}
Stage: build

%files
    /etc/hostname /h

Bootstrap: localimage
From: base.sif

%files from build
    /h /copied

%labels
    Author me
    Version {{VER}}
%help
    Some help.
";
    let d = parse(Path::new("d.def"), text, &BuildArgs::new()).unwrap();
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].from.as_deref(), Some("alpine:3.18"));
    assert_eq!(d.stages[0].name.as_deref(), Some("build"));
    assert_eq!(d.stages[0].files[0].dst, "/h");
    assert_eq!(d.stages[1].files[0].from.as_deref(), Some("build"));
    assert_eq!(d.stages[1].labels[1], ("Version".into(), "3.18".into()));
    assert_eq!(d.stages[1].help.as_deref(), Some("    Some help."));
    let mut a = BuildArgs::new();
    a.insert("VER".into(), "3.19".into());
    let d = parse(Path::new("d.def"), text, &a).unwrap();
    assert_eq!(d.stages[0].from.as_deref(), Some("alpine:3.19"));
}

#[test]
fn errors_name_the_line() {
    let e = parse(
        Path::new("bad.def"),
        "Bootstrap: docker\nFrom: x\n%post\n  true\n%bogus\n",
        &BuildArgs::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("bad.def:5: unknown section %bogus"), "{e}");
    let e = parse(Path::new("b"), "Bootstrap: nope\n", &BuildArgs::new())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("b:1: unknown Bootstrap"), "{e}");
    let e = parse(Path::new("b"), "Bootstrap: docker\n", &BuildArgs::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("needs a From"), "{e}");
    let e = parse(
        Path::new("b"),
        "Bootstrap: docker\nFrom: a:{{ X }}\n",
        &BuildArgs::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("b:2: build argument X"), "{e}");
    let e = parse(
        Path::new("b"),
        "Bootstrap: docker\nFrom: a\nfoo bar\n",
        &BuildArgs::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("b:3: expected"), "{e}");
    let e = parse(
        Path::new("b"),
        "Bootstrap: docker\nColour: red\nFrom: a\n",
        &BuildArgs::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("b:2: unknown header key"), "{e}");
}
