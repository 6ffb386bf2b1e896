//! mgrpo-actors
