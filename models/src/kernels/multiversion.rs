//! Compiles a slice kernel twice — for the baseline target and with AVX2 enabled — behind a
//! wrapper that runs the AVX2 one when the CPU has it. The kernels use no fused multiply-adds,
//! so both builds give the same bits: results do not depend on the CPU's vector width.

/// `multiversion! { pub(super) fn name(args) { body } }`: see the module docs.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { avx2($($arg),*) };
            }
            body($($arg),*)
        }
    };
}
