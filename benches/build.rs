//! Links the benches and bench binaries against libtorch (see `gm-build`).

fn main() {
    gm_build::link_libtorch();
}
