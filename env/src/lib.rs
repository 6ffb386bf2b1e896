//! mgrpo-env
