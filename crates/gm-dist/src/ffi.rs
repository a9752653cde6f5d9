//! The C functions of `csrc/gloo_shim.cpp` and a safe owner of the group they create.
#![allow(unsafe_code)]

use crate::Rendezvous;
use std::ffi::{c_char, c_int, c_long, CStr, CString};
use tch::Tensor;
use torch_sys::C_tensor;

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    fn gm_pg_new(
        host: *const c_char,
        port: c_int,
        rank: c_int,
        world: c_int,
        server: c_int,
        prefix: *const c_char,
        timeout_ms: c_long,
        err: *mut *mut c_char,
    ) -> *mut RawGroup;
    fn gm_pg_free(pg: *mut RawGroup);
    fn gm_pg_free_message(s: *mut c_char);
    fn gm_pg_all_reduce_sum(pg: *mut RawGroup, t: *mut C_tensor, err: *mut *mut c_char) -> c_int;
    fn gm_pg_all_reduce_max(pg: *mut RawGroup, t: *mut C_tensor, err: *mut *mut c_char) -> c_int;
    fn gm_pg_broadcast(
        pg: *mut RawGroup,
        t: *mut C_tensor,
        root: c_int,
        err: *mut *mut c_char,
    ) -> c_int;
    fn gm_pg_all_gather(
        pg: *mut RawGroup,
        out: *mut C_tensor,
        t: *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
}

/// The message the shim wrote into `err` (and freed), or a placeholder.
fn take_message(err: *mut c_char) -> String {
    if err.is_null() {
        return "no message".into();
    }
    // SAFETY: a non-null `err` is a NUL-terminated string malloc'ed by the shim, read once
    // and freed by the shim's own free.
    unsafe {
        let s = CStr::from_ptr(err).to_string_lossy().into_owned();
        gm_pg_free_message(err);
        // c10 appends the C++ stack to its messages; the first part says what happened.
        s.split("\nException raised from")
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

fn status(rc: c_int, err: *mut c_char) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(take_message(err))
    }
}

/// An owned c10d Gloo process group.
pub(crate) struct Group(*mut RawGroup);

// SAFETY: c10d process groups are used from any thread (their work runs on Gloo's own
// threads); gm calls them from one thread at a time.
unsafe impl Send for Group {}
// SAFETY: as above; collectives are issued in the same order on every rank by the trainer.
unsafe impl Sync for Group {}

impl Group {
    pub(crate) fn new(r: &Rendezvous, server: bool) -> Result<Group, String> {
        let host = CString::new(r.addr.as_str()).map_err(|e| e.to_string())?;
        let prefix = CString::new(r.prefix.as_str()).map_err(|e| e.to_string())?;
        let mut err = std::ptr::null_mut();
        // SAFETY: the strings outlive the call; `err` receives a message on failure only.
        let pg = unsafe {
            gm_pg_new(
                host.as_ptr(),
                c_int::from(r.port),
                r.rank as c_int,
                r.world as c_int,
                c_int::from(server),
                prefix.as_ptr(),
                r.timeout_ms as c_long,
                &mut err,
            )
        };
        if pg.is_null() {
            Err(take_message(err))
        } else {
            Ok(Group(pg))
        }
    }

    pub(crate) fn all_reduce(&self, t: &Tensor, max: bool) -> Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: `self.0` is a live group and `t` a live tensor for the call's duration.
        let rc = unsafe {
            if max {
                gm_pg_all_reduce_max(self.0, t.as_ptr().cast_mut(), &mut err)
            } else {
                gm_pg_all_reduce_sum(self.0, t.as_ptr().cast_mut(), &mut err)
            }
        };
        status(rc, err)
    }

    pub(crate) fn broadcast(&self, t: &Tensor, root: i32) -> Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: as in `all_reduce`.
        let rc = unsafe { gm_pg_broadcast(self.0, t.as_ptr().cast_mut(), root, &mut err) };
        status(rc, err)
    }

    pub(crate) fn all_gather(&self, out: &Tensor, t: &Tensor) -> Result<(), String> {
        let mut err = std::ptr::null_mut();
        // SAFETY: as in `all_reduce`; `out` holds world × t.numel() elements (the caller's).
        let rc = unsafe {
            gm_pg_all_gather(
                self.0,
                out.as_ptr().cast_mut(),
                t.as_ptr().cast_mut(),
                &mut err,
            )
        };
        status(rc, err)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: the group was created by `gm_pg_new` and is freed once.
        unsafe { gm_pg_free(self.0) }
    }
}
