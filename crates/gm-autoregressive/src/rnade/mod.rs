//! (being written)

use gm_core::model::ModelRegistry;

/// Adds this module's models to `registry`.
pub(crate) fn register(_registry: &mut ModelRegistry) {}
