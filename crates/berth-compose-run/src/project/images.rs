//! Service images: built through the CLI's [`ImageBuilder`], pulled, pushed, and the checks
//! that need them.

use super::*;

/// What needs the images to check (a `healthcheck:` without `test` takes the image's), before
/// anything is created.
pub(super) fn check_with_images(
    p: &Project,
    services: &[String],
    images: &BTreeMap<String, (String, berth_image::Image)>,
) -> Result<()> {
    let mut all = Vec::new();
    for n in services {
        let (Some(s), Some((_, img))) = (p.services.get(n), images.get(n)) else {
            continue;
        };
        let h = berth_engine::health::HealthConfig::from_image(img.config.healthcheck.as_ref());
        if let Err(e) = convert::healthcheck(n, s, h) {
            all.push(convert::locate(p, n, s, &e.to_string()));
        }
    }
    if all.is_empty() {
        Ok(())
    } else {
        Err(RunError::Invalid(all.join("; ")))
    }
}

/// Builds a service's image (the seam to `berth-build`; the CLI provides it).
pub trait ImageBuilder {
    /// Build `b` and tag the result `tag`. Errors are shown to the user as they are.
    fn build(
        &self,
        store: &Store,
        service: &str,
        b: &berth_compose::model::Build,
        tag: &str,
    ) -> std::result::Result<(), String>;
}

/// How [`ensure_images`] gets images.
#[derive(Clone, Copy, Default)]
pub struct ImagePolicy<'a> {
    /// `--pull always|missing|never` (default: each service's pull_policy, else missing).
    pub pull: Option<&'a str>,
    /// `--build`: build every selected service that has `build:`.
    pub build: bool,
    /// `--no-build`: never build (a missing built image is an error).
    pub no_build: bool,
    /// The builder (`None`: building is not available).
    pub builder: Option<&'a dyn ImageBuilder>,
}

/// Build the image of service `n` with `policy`'s builder.
pub fn build_service(
    store: &Store,
    p: &Project,
    n: &str,
    policy: &ImagePolicy<'_>,
    progress: Progress<'_>,
) -> Result<()> {
    let s = &p.services[n];
    let Some(b) = &s.build else { return Ok(()) };
    let r = convert::image_ref(p, n, s);
    let Some(builder) = policy.builder else {
        return Err(RunError::Unsupported(format!(
            "services.{n}.build: image {r} needs a build and berth compose cannot build images yet; build it and tag it {r}, or use image:"
        )));
    };
    progress(&format!("Service {n}"), "Building");
    builder
        .build(store, n, b, &r)
        .map_err(|e| RunError::Invalid(format!("services.{n}.build: {e}")))?;
    progress(&format!("Service {n}"), "Built");
    Ok(())
}

/// Resolve the image of each service, building (services with `build:` whose image is
/// missing, or all of them with `--build`) or pulling when needed and allowed:
/// name → (ref, image).
pub fn ensure_images(
    store: &Store,
    p: &Project,
    services: &[String],
    policy: &ImagePolicy<'_>,
    progress: Progress<'_>,
) -> Result<BTreeMap<String, (String, berth_image::Image)>> {
    let images = ImageStore::open(store)?;
    let mut out = BTreeMap::new();
    for n in services {
        let s = &p.services[n];
        let r = convert::image_ref(p, n, s);
        let pull_policy = policy
            .pull
            .map(str::to_string)
            .or_else(|| s.pull_policy.clone())
            .unwrap_or_else(|| "missing".into());
        let found = images.resolve(&r);
        if s.build.is_some()
            && !policy.no_build
            && (policy.build || pull_policy == "build" || found.is_err())
        {
            build_service(store, p, n, policy, progress)?;
            out.insert(n.clone(), (r.clone(), images.resolve(&r)?));
            continue;
        }
        let need_pull = match (&found, pull_policy.as_str()) {
            (_, "always") => s.image.is_some(),
            (Err(berth_image::ImageError::NotFound(_)), _) => true,
            (Err(e), _) => return Err(RunError::Invalid(format!("services.{n}.image: {e}"))),
            (Ok(_), _) => false,
        };
        if need_pull {
            if s.build.is_some() && found.is_err() {
                return Err(RunError::Invalid(format!(
                    "services.{n}: image {r} is not built (--no-build was given)"
                )));
            }
            if matches!(pull_policy.as_str(), "never") {
                return Err(RunError::Invalid(format!(
                    "services.{n}: image {r} not found and pull_policy is never"
                )));
            }
            pull_image(store, &r, progress)?;
        }
        let img = images.resolve(&r)?;
        out.insert(n.clone(), (r, img));
    }
    Ok(out)
}

/// Pull one image (progress on stderr).
pub fn pull_image(store: &Store, r: &str, progress: Progress<'_>) -> Result<()> {
    progress(&format!("Image {r}"), "Pulling");
    let reference = berth_image::Reference::parse(r)
        .map_err(|e| RunError::Invalid(format!("invalid image reference {r:?}: {e}")))?;
    let opts = berth_registry::PullOptions {
        output: berth_registry::OutputStream::Stderr,
        ..Default::default()
    };
    berth_registry::pull(store, &reference, &opts).map_err(|e| RunError::Pull {
        image: r.to_string(),
        source: e,
    })?;
    progress(&format!("Image {r}"), "Pulled");
    Ok(())
}

/// Push the image of each service that names one (`image:`), as `compose push` does.
pub fn push_images(
    store: &Store,
    p: &Project,
    services: &[String],
    progress: Progress<'_>,
) -> Result<()> {
    for n in services {
        let Some(r) = p.services.get(n).and_then(|s| s.image.clone()) else {
            continue;
        };
        let reference = berth_image::Reference::parse(&r).map_err(|e| {
            RunError::Invalid(format!("services.{n}.image: invalid reference {r:?}: {e}"))
        })?;
        progress(&format!("Image {r}"), "Pushing");
        berth_registry::push(
            store,
            &r,
            &reference,
            &berth_registry::PushOptions::default(),
        )
        .map_err(|e| RunError::Pull {
            image: r.clone(),
            source: e,
        })?;
        progress(&format!("Image {r}"), "Pushed");
    }
    Ok(())
}
