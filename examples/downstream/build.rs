// Puts libtorch's lib/ on this binary's rpath and keeps libtorch_cuda linked (see gm-build).
fn main() {
    gm_build::link_libtorch();
}
