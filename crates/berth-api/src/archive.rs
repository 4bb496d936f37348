//! The `docker cp` protocol: `HEAD|GET|PUT /containers/{id}/archive?path=` and
//! `GET /containers/{id}/export`, over the engine's `copy_out`/`copy_in`/`export`. Every
//! path is resolved inside the container's root (the engine's chrooted worker thread), so a
//! symlink in the container cannot lead outside it.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;

use berth_engine::ops;
use berth_engine::state::Container;

use crate::http::{self, Query, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

/// The header carrying a path's stat (base64 of a JSON object).
const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Go's `os.FileMode` bits for a Unix `st_mode` (what Docker's stat header carries).
fn go_mode(mode: u32) -> u32 {
    let mut m = mode & 0o777;
    match mode & libc::S_IFMT {
        libc::S_IFDIR => m |= 1 << 31,
        libc::S_IFLNK => m |= 1 << 27,
        libc::S_IFBLK => m |= 1 << 26,
        libc::S_IFCHR => m |= (1 << 26) | (1 << 21),
        libc::S_IFIFO => m |= 1 << 25,
        libc::S_IFSOCK => m |= 1 << 24,
        _ => {}
    }
    if mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// The last component of a path as Go's `filepath.Base` gives it (`/` for the root, `.`
/// for `DIR/.`).
fn go_base(p: &str) -> String {
    if p.ends_with("/.") || p == "." {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// The `path` parameter as an absolute path in the container.
fn container_path(q: &Query) -> Result<String> {
    let p = q
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::BadParameter("path: give a path in the container".into()))?;
    Ok(if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    })
}

/// Stat `path` inside the container: Docker's `ContainerPathStat` JSON, or a 404.
fn stat(store: &berth_store::Store, c: &Container, path: &str) -> Result<serde_json::Value> {
    let p = path.to_string();
    let found = ops::in_container_root(store, c, move || {
        let md = match std::fs::symlink_metadata(&p) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
            Err(e) => return Err(berth_engine::EngineError::io(&p, e)),
        };
        let link = if md.file_type().is_symlink() {
            std::fs::canonicalize(&p)
                .or_else(|_| std::fs::read_link(&p))
                .map(|t| t.display().to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Some((
            md.size(),
            md.mode(),
            md.mtime(),
            md.mtime_nsec(),
            link,
        )))
    })?;
    let Some((size, mode, secs, nsec, link)) = found else {
        return Err(ApiError::NotFound(format!(
            "Could not find the file {path} in container {}",
            c.name
        )));
    };
    let mtime = chrono::DateTime::from_timestamp(secs, u32::try_from(nsec).unwrap_or(0))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    Ok(json!({
        "name": go_base(path),
        "size": size,
        "mode": go_mode(mode),
        "mtime": mtime,
        "linkTarget": link,
    }))
}

fn stat_header(r: &mut Resp, st: &serde_json::Value) {
    let v = base64::engine::general_purpose::STANDARD.encode(st.to_string());
    if let Ok(h) = v.parse() {
        r.headers_mut().insert(STAT_HEADER, h);
    }
}

/// `HEAD /containers/{id}/archive?path=`: 200 with the stat header, 404 when missing.
pub async fn head(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let path = container_path(q)?;
    let st = app
        .blocking(move |store| {
            let c = crate::containers::find(store, &id)?;
            stat(store, &c, &path)
        })
        .await?;
    let mut r = http::with_headers(200, "", http::empty());
    stat_header(&mut r, &st);
    Ok(r)
}

/// `GET /containers/{id}/archive?path=`: a tar of the path (its top entry named after the
/// path's last component, ownership kept) with the stat header.
pub async fn get(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let path = container_path(q)?;
    let p2 = path.clone();
    let (c, st) = app
        .blocking(move |store| {
            let c = crate::containers::find(store, &id)?;
            let st = stat(store, &c, &p2)?;
            Ok((c, st))
        })
        .await?;
    let dir_mode = (
        st["mode"].as_u64().unwrap_or(0o755) & 0o7777,
        st["mtime"].as_str().unwrap_or("").to_string(),
    );
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::Builder::new()
        .name("berth-api-archive".into())
        .spawn(move || {
            let Ok(store) = berth_store::Store::open(&root) else {
                return;
            };
            let mut w = http::ChannelWriter {
                tx,
                stream: 0,
                multiplex: false,
            };
            let res = if ops::files_contents_only(&path) {
                contents_tar(&store, &c, &path, &dir_mode, &mut w)
            } else {
                ops::copy_out(&store, &c, &path, None, (false, true), &mut w)
            };
            if let Err(e) = res {
                tracing::debug!("archive {path}: {e}");
            }
        })
        .map_err(|e| ApiError::Internal(format!("starting the archive thread: {e}")))?;
    let mut r = http::with_headers(200, "application/x-tar", body);
    stat_header(&mut r, &st);
    Ok(r)
}

/// A directory's contents (`DIR/.`) as Docker sends them: a `./` entry for the directory,
/// then every entry under `./` (the docker CLI renames entries by replacing the leading `.`).
/// The engine's tar (entries without the `./`) is rewritten on the fly.
fn contents_tar(
    store: &berth_store::Store,
    c: &Container,
    path: &str,
    dir: &(u64, String),
    w: &mut (dyn std::io::Write + Send),
) -> berth_engine::Result<()> {
    let (r, mut pw) = rustix::pipe::pipe()
        .map(|(r, w)| (std::fs::File::from(r), std::fs::File::from(w)))
        .map_err(|e| berth_engine::EngineError::Other(format!("pipe: {e}")))?;
    std::thread::scope(|s| {
        let h = s.spawn(move || dot_prefix(r, w, dir));
        let res = ops::copy_out(store, c, path, None, (false, true), &mut pw);
        drop(pw);
        let out = h
            .join()
            .map_err(|_| berth_engine::EngineError::Other("archive worker panicked".into()))?;
        res?;
        out.map_err(|e| berth_engine::EngineError::Other(format!("writing the archive: {e}")))
    })
}

/// Copy the tar `r` to `w` with `./` before every name, after a `./` directory entry with
/// `dir`'s mode and RFC 3339 mtime. Names that no longer fit the header get a GNU long-name
/// entry.
fn dot_prefix(
    r: impl std::io::Read,
    w: &mut (dyn std::io::Write + Send),
    dir: &(u64, String),
) -> std::io::Result<()> {
    let mut out = tar::Builder::new(w);
    let mut top = tar::Header::new_gnu();
    top.set_entry_type(tar::EntryType::Directory);
    top.set_mode(u32::try_from(dir.0).unwrap_or(0o755));
    top.set_mtime(
        chrono::DateTime::parse_from_rfc3339(&dir.1)
            .map(|t| u64::try_from(t.timestamp()).unwrap_or(0))
            .unwrap_or(0),
    );
    top.set_size(0);
    set_raw_name(&mut out, &mut top, b".")?;
    out.append(&top, std::io::empty())?;
    let mut ar = tar::Archive::new(r);
    for e in ar.entries()? {
        let mut e = e?;
        let mut name = b"./".to_vec();
        name.extend_from_slice(&e.path_bytes());
        let mut h = e.header().clone();
        if let Some(l) = e.link_name_bytes() {
            let field = &mut h.as_old_mut().linkname;
            field.fill(0);
            let n = l.len().min(field.len());
            field[..n].copy_from_slice(&l[..n]);
            if l.len() > n {
                long_entry(&mut out, tar::EntryType::GNULongLink, &l)?;
            }
        }
        set_raw_name(&mut out, &mut h, &name)?;
        h.set_cksum();
        out.append(&h, &mut e)?;
    }
    out.finish()
}

/// Put `name` into the header as is (no path normalisation); a name longer than the field
/// goes first as a GNU `././@LongLink` entry.
fn set_raw_name<W: std::io::Write>(
    out: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &[u8],
) -> std::io::Result<()> {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    if name.len() <= field.len() {
        field[..name.len()].copy_from_slice(name);
    } else {
        field.copy_from_slice(&name[..100]);
        long_entry(out, tar::EntryType::GNULongName, name)?;
    }
    h.set_cksum();
    Ok(())
}

/// A GNU `././@LongLink` entry carrying the next entry's long name (`L`) or link target (`K`).
fn long_entry<W: std::io::Write>(
    out: &mut tar::Builder<W>,
    kind: tar::EntryType,
    value: &[u8],
) -> std::io::Result<()> {
    let mut long = tar::Header::new_gnu();
    long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long.set_entry_type(kind);
    long.set_mode(0o644);
    let mut data = value.to_vec();
    data.push(0);
    long.set_size(u64::try_from(data.len()).unwrap_or(0));
    long.set_cksum();
    out.append(&long, &data[..])
}

/// `PUT /containers/{id}/archive?path=DIR&noOverwriteDirNonDir=&copyUIDGID=`: extract the
/// tar body into the directory `DIR` of the container (a symlink to a directory is followed;
/// every entry is created inside the container's root) through the engine's `copy_in`, the
/// call `berth cp` makes. `noOverwriteDirNonDir` refuses to replace a directory with a
/// non-directory or the reverse, `copyUIDGID` gives the entries the container user's
/// ownership (see `ops::CopyInOptions`). Statuses as Docker's: 404 when `DIR` does not
/// exist, 400 when it is not a directory, the tar is bad or the container's user cannot be
/// resolved, 500 for a refused overwrite.
pub async fn put(app: &Arc<App>, id: String, r: Req) -> Result<Resp> {
    let path = container_path(&r.query)?;
    let opts = ops::CopyInOptions {
        no_overwrite_dir_non_dir: r.query.bool("noOverwriteDirNonDir", false),
        copy_uid_gid: r.query.bool("copyUIDGID", false),
    };
    let p2 = path.clone();
    let c = app
        .blocking(move |store| {
            let c = crate::containers::find(store, &id)?;
            stat(store, &c, &p2)?;
            Ok(c)
        })
        .await?;
    let mut body = http::BodyReader::new(r.inner.into_body());
    app.blocking(move |store| {
        ops::copy_in(store, &c, &path, opts, &mut body).map_err(|e| match e {
            berth_engine::EngineError::InvalidArgument(m) => ApiError::BadParameter(m),
            berth_engine::EngineError::Image(berth_image::ImageError::WouldOverwrite(m)) => {
                ApiError::Internal(m)
            }
            e => ApiError::BadParameter(format!("extracting the archive into {path}: {e}")),
        })
    })
    .await?;
    Ok(http::with_headers(200, "", http::empty()))
}

/// `GET /containers/{id}/export`: a tar of the container's whole root filesystem.
pub async fn export(app: &Arc<App>, id: String) -> Result<Resp> {
    let c = app
        .blocking(move |store| crate::containers::find(store, &id))
        .await?;
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::Builder::new()
        .name("berth-api-export".into())
        .spawn(move || {
            let Ok(store) = berth_store::Store::open(&root) else {
                return;
            };
            let mut w = http::ChannelWriter {
                tx,
                stream: 0,
                multiplex: false,
            };
            if let Err(e) = ops::export(&store, &c, &mut w) {
                tracing::debug!("export {}: {e}", c.id);
            }
        })
        .map_err(|e| ApiError::Internal(format!("starting the export thread: {e}")))?;
    Ok(http::with_headers(200, "application/x-tar", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_file_modes_and_bases() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
        assert_eq!(go_base("/etc/hostname"), "hostname");
        assert_eq!(go_base("/etc/"), "etc");
        assert_eq!(go_base("/"), "/");
        assert_eq!(go_base("/dir/."), ".");
    }

    #[test]
    fn contents_get_dot_slash_names_long_ones_too() {
        let long = "n".repeat(150);
        let mut b = tar::Builder::new(Vec::new());
        for name in ["f", long.as_str()] {
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            b.append_data(&mut h, name, &b"x\n"[..]).unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l", format!("/{long}")).unwrap();
        let input = b.into_inner().unwrap();
        let mut out: Vec<u8> = Vec::new();
        dot_prefix(
            &input[..],
            &mut out,
            &(0o750, "2024-01-02T03:04:05Z".into()),
        )
        .unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let got: Vec<(String, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                    e.link_name_bytes()
                        .map(|l| String::from_utf8_lossy(&l).into_owned()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (".".to_string(), None),
                ("./f".to_string(), None),
                (format!("./{long}"), None),
                ("./l".to_string(), Some(format!("/{long}"))),
            ]
        );
    }
}
