//! `rename`: a container's name changes in its row and in the network records (so the
//! embedded DNS answers the new name); its id, state and processes stay.

use berth_store::Store;

use crate::state::{self, Container};
use crate::Result;

/// Rename `c` to `name`. Errors: [`crate::EngineError::InvalidArgument`] for a bad name,
/// [`crate::EngineError::NameInUse`] when another container has it.
pub fn rename(store: &Store, c: &Container, name: &str) -> Result<()> {
    let name = name.strip_prefix('/').unwrap_or(name);
    super::create::validate_name(name)?;
    if name == c.name {
        return Err(crate::EngineError::InvalidArgument(format!(
            "renaming a container with the same name as its current name: {name:?}; choose another name"
        )));
    }
    state::rename(store, &c.id, name)?;
    berth_net::state::rename_container(store.db(), &c.id, name)?;
    let old = format!("/{}", c.name);
    let mut renamed = c.clone();
    renamed.name = name.to_string();
    state::event(store, &renamed, "rename", &[("oldName", &old)]);
    Ok(())
}
