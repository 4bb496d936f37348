//! Docker's image events (`pull`, `push`, `tag`, `untag`, `delete`, `load`, `save`, `import`,
//! a build's `create`): `Actor.Attributes` carry the image config's labels alongside `name`,
//! so `docker events --filter label=KEY[=VALUE]` sees them. Every image operation that
//! records an event goes through here.

use berth_store::{Digest, Store};

use crate::{Image, ImageStore};

/// Record the image event `action` on `actor` (the image id or the reference, as Docker
/// uses for that action) with `image`'s labels (none when `None`) and `name`.
pub fn record(store: &Store, action: &str, actor: &str, name: &str, image: Option<&Image>) {
    let empty = Default::default();
    let labels = image
        .and_then(|i| i.config.labels.as_ref())
        .unwrap_or(&empty);
    berth_events::record_labelled(store, "image", action, actor, labels, &[("name", name)]);
}

/// [`record`] for the stored image with id `image_id` (no labels if it cannot be read).
pub fn record_for(store: &Store, action: &str, actor: &str, name: &str, image_id: &Digest) {
    let image = ImageStore::open(store).and_then(|is| is.get(image_id)).ok();
    record(store, action, actor, name, image.as_ref());
}
