use std::io::{self, Read};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::layer::{ChannelReader, Msg};
use super::*;

#[test]
fn channel_reader_streams_and_reports_errors() {
    let (tx, rx) = mpsc::channel(4);
    let t = std::thread::spawn(move || {
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
            done: false,
        };
        let mut out = Vec::new();
        let res = r.read_to_end(&mut out);
        (out, res.map_err(|e| e.to_string()))
    });
    tx.blocking_send(Msg::Data(Bytes::from_static(b"hello ")))
        .unwrap();
    tx.blocking_send(Msg::Data(Bytes::from_static(b"world")))
        .unwrap();
    tx.blocking_send(Msg::End).unwrap();
    let (out, res) = t.join().unwrap();
    assert_eq!(out, b"hello world");
    assert!(res.is_ok());

    // Dropped without an explicit end: an error, never a silent short read.
    let (tx, rx) = mpsc::channel(4);
    tx.blocking_send(Msg::Data(Bytes::from_static(b"part")))
        .unwrap();
    drop(tx);
    let mut r = ChannelReader {
        rx,
        cur: Bytes::new(),
        done: false,
    };
    let mut out = Vec::new();
    assert!(r.read_to_end(&mut out).is_err());

    let (tx, rx) = mpsc::channel(4);
    tx.blocking_send(Msg::Err(io::Error::other("boom")))
        .unwrap();
    let mut r = ChannelReader {
        rx,
        cur: Bytes::new(),
        done: false,
    };
    assert_eq!(r.read(&mut [0u8; 8]).unwrap_err().to_string(), "boom");
}

#[test]
fn platform_of_config() {
    let p = config_platform(br#"{"os":"linux","architecture":"arm","variant":"v7"}"#).unwrap();
    assert_eq!(p.to_string(), "linux/arm/v7");
    assert!(config_platform(br#"{"os":"linux"}"#).is_none());
}
