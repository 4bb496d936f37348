//! `import`: an image from a root filesystem tarball.
