//! mgrpo-models
