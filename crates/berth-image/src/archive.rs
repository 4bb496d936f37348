//! docker-archive and oci-archive: load and save.
