//! Links the crate's binaries and tests against libtorch (see `gm-build`).

fn main() {
    gm_build::link_libtorch();
}
