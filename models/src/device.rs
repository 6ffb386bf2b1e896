//! Device selection, in one place.
//!
//! burn 0.22 picks the backend at run time through a [`Device`]. Every role's backend and device
//! come from configuration (`cluster.toml`) as a [`DeviceSpec`]; this module is the only code that
//! turns one into a burn device, so nothing else in the workspace branches on the backend.
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// The tensor backend a role runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (always compiled in; the default).
    #[default]
    Flex,
    /// libtorch through `tch` (CPU or CUDA); needs the `tch` cargo feature.
    Tch,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Flex => "flex",
            BackendKind::Tch => "tch",
        })
    }
}

/// Where a model runs: `{backend = "flex" | "tch", device = "cpu" | "cuda:N"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// The backend.
    #[serde(default)]
    pub backend: BackendKind,
    /// The device on that backend: `cpu`, `cuda:N` (tch only) or `mps` (tch only).
    #[serde(default = "default_device_name")]
    pub device: String,
}

fn default_device_name() -> String {
    "cpu".to_string()
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self::flex_cpu()
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.backend, self.device)
    }
}

impl DeviceSpec {
    /// The embedded default: flex on the CPU.
    pub fn flex_cpu() -> Self {
        Self {
            backend: BackendKind::Flex,
            device: default_device_name(),
        }
    }

    /// Parses a backend name (`flex`, `tch`) and a device name.
    pub fn parse(backend: &str, device: &str) -> Result<Self> {
        let backend = match backend.trim().to_ascii_lowercase().as_str() {
            "flex" => BackendKind::Flex,
            "tch" | "libtorch" => BackendKind::Tch,
            other => {
                return Err(ModelError::InvalidDevice(format!(
                    "unknown backend `{other}` (expected flex or tch)"
                )));
            }
        };
        let spec = Self {
            backend,
            device: device.trim().to_ascii_lowercase(),
        };
        spec.check()?;
        Ok(spec)
    }

    /// The spec named by the environment: `MGRPO_TEST_BACKEND` (flex|tch, default flex) and
    /// `MGRPO_TEST_DEVICE` (default cpu). Tests use it so the same suite runs on every backend.
    pub fn from_env() -> Result<Self> {
        let backend = std::env::var("MGRPO_TEST_BACKEND").unwrap_or_else(|_| "flex".into());
        let device = std::env::var("MGRPO_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
        Self::parse(&backend, &device)
    }

    fn check(&self) -> Result<()> {
        let cuda_index = self.cuda_index()?;
        match self.backend {
            BackendKind::Flex if self.device != "cpu" => Err(ModelError::InvalidDevice(format!(
                "backend flex runs on `cpu` only, not `{}`",
                self.device
            ))),
            BackendKind::Tch
                if self.device != "cpu" && self.device != "mps" && cuda_index.is_none() =>
            {
                Err(ModelError::InvalidDevice(format!(
                    "unknown tch device `{}` (expected cpu, cuda:N or mps)",
                    self.device
                )))
            }
            _ => Ok(()),
        }
    }

    /// The CUDA index of a `cuda` / `cuda:N` device, `None` for other devices.
    fn cuda_index(&self) -> Result<Option<usize>> {
        if self.device == "cuda" {
            return Ok(Some(0));
        }
        match self.device.strip_prefix("cuda:") {
            Some(index) => index.parse().map(Some).map_err(|_| {
                ModelError::InvalidDevice(format!("bad CUDA index in `{}`", self.device))
            }),
            None => Ok(None),
        }
    }

    /// The burn device (without autodiff) this spec names.
    pub fn to_device(&self) -> Result<Device> {
        self.check()?;
        match self.backend {
            BackendKind::Flex => Ok(Device::flex()),
            BackendKind::Tch => self.tch_device(),
        }
    }

    #[cfg(feature = "tch")]
    #[allow(deprecated)] // burn-tch is deprecated upstream but is our GPU path for now.
    fn tch_device(&self) -> Result<Device> {
        if let Some(index) = self.cuda_index()? {
            return Ok(Device::libtorch_cuda(index));
        }
        if self.device == "mps" {
            return Ok(Device::libtorch_mps());
        }
        Ok(Device::libtorch())
    }

    #[cfg(not(feature = "tch"))]
    fn tch_device(&self) -> Result<Device> {
        Err(ModelError::TchNotCompiled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_serde() {
        let spec = DeviceSpec::parse("flex", "cpu").unwrap();
        assert_eq!(spec, DeviceSpec::flex_cpu());
        assert!(spec.to_device().is_ok());
        let toml_like: DeviceSpec =
            serde_json::from_str(r#"{"backend":"tch","device":"cuda:1"}"#).unwrap();
        assert_eq!(toml_like.backend, BackendKind::Tch);
        assert_eq!(toml_like.cuda_index().unwrap(), Some(1));
        let defaulted: DeviceSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(defaulted, DeviceSpec::flex_cpu());
        assert_eq!(defaulted.to_string(), "flex:cpu");
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(matches!(
            DeviceSpec::parse("wgpu", "cpu"),
            Err(ModelError::InvalidDevice(_))
        ));
        assert!(DeviceSpec::parse("flex", "cuda:0").is_err());
        assert!(DeviceSpec::parse("tch", "cuda:x").is_err());
        assert!(DeviceSpec::parse("tch", "tpu").is_err());
    }

    #[cfg(not(feature = "tch"))]
    #[test]
    fn tch_without_feature_is_a_clear_error() {
        let spec = DeviceSpec::parse("tch", "cpu").unwrap();
        let err = spec.to_device().unwrap_err();
        assert!(matches!(err, ModelError::TchNotCompiled));
        assert!(err.to_string().contains("--features tch"));
    }
}
