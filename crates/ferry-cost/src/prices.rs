//! Price tables per machine class: what a vCPU-hour, a GiB-hour of memory,
//! a GPU-hour of each type and a GiB-month of storage cost. Two ship with
//! ferry, each saying when its figures were entered and where from; a
//! project or server overrides them or adds its own (`Prices::overlay`).

use crate::CostError;
use std::collections::BTreeMap;

/// One machine class's prices, in US dollars, on-demand.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PriceTable {
    /// The class's name (`aws-us-east-1`), what `resources.machine` names.
    pub name: String,
    /// When the figures were entered (`YYYY-MM-DD`).
    pub as_of: String,
    /// Where they come from.
    pub source: String,
    pub vcpu_hour: f64,
    pub memory_gib_hour: f64,
    /// By GPU type (`t4`, `a100`), per GPU.
    #[serde(default)]
    pub gpu_hour: BTreeMap<String, f64>,
    /// Object storage (the cache's remote, artifacts).
    pub storage_gib_month: f64,
}

impl PriceTable {
    /// The price of one GPU of type `gpu` for an hour.
    pub fn gpu(&self, gpu: &str) -> Result<f64, CostError> {
        self.gpu_hour
            .get(gpu)
            .copied()
            .ok_or_else(|| CostError::UnknownGpu {
                machine: self.name.clone(),
                gpu: gpu.to_owned(),
                known: join(self.gpu_hour.keys().map(String::as_str)),
            })
    }
}

/// The price tables a project or server knows, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    tables: Vec<PriceTable>,
}

/// The machine class a project uses when it names none.
pub const DEFAULT_MACHINE: &str = "aws-us-east-1";

impl Prices {
    /// The tables that ship with ferry: one AWS and one GCP region.
    pub fn shipped() -> Self {
        Self::with(vec![aws_us_east_1(), gcp_us_central1()])
    }

    pub fn with(tables: Vec<PriceTable>) -> Self {
        Self { tables }
    }

    /// These tables with `overrides` in place of those of the same name,
    /// and any others added.
    pub fn overlay(mut self, overrides: Vec<PriceTable>) -> Self {
        for t in overrides {
            match self.tables.iter_mut().find(|x| x.name == t.name) {
                Some(slot) => *slot = t,
                None => self.tables.push(t),
            }
        }
        self
    }

    pub fn get(&self, name: &str) -> Result<&PriceTable, CostError> {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| CostError::UnknownMachine {
                name: name.to_owned(),
                known: join(self.tables.iter().map(|t| t.name.as_str())),
            })
    }

    pub fn tables(&self) -> &[PriceTable] {
        &self.tables
    }
}

fn join<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = names.collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

/// AWS, US East (N. Virginia): Fargate's Linux/x86 rates for vCPU and
/// memory (billed per second on what a task requests, as ferry charges a
/// stage that declares `resources:`), S3 Standard for storage, and per GPU
/// the on-demand price of the smallest EC2 instance carrying one of that
/// type, divided by its GPUs (its vCPUs and memory included).
fn aws_us_east_1() -> PriceTable {
    PriceTable {
        name: "aws-us-east-1".into(),
        as_of: "2026-12-03".into(),
        source: "https://aws.amazon.com/fargate/pricing/ (Linux/x86: $0.04048 per vCPU-hour, \
                 $0.004445 per GB-hour, as quoted in June 2026), \
                 https://aws.amazon.com/s3/pricing/ (S3 Standard, first 50 TB), \
                 https://aws.amazon.com/ec2/pricing/on-demand/ (g4dn.xlarge for t4, g5.xlarge \
                 for a10g, p4d.24xlarge / 8 for a100)"
            .into(),
        vcpu_hour: 0.04048,
        memory_gib_hour: 0.004445,
        gpu_hour: [("t4", 0.526), ("a10g", 1.006), ("a100", 4.0966)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        storage_gib_month: 0.023,
    }
}

/// GCP, us-central1 (Iowa): Compute Engine N2 on-demand rates for vCPU and
/// memory (n2-standard-2 at $0.0971 an hour is 2 of one and 8 of the
/// other), its attached GPUs, and Cloud Storage Standard.
fn gcp_us_central1() -> PriceTable {
    PriceTable {
        name: "gcp-us-central1".into(),
        as_of: "2026-12-03".into(),
        source: "https://cloud.google.com/compute/vm-instance-pricing (N2: $0.031611 per \
                 vCPU-hour, $0.004237 per GiB-hour), \
                 https://cloud.google.com/compute/gpus-pricing (t4, v100, a100 40GB), \
                 https://cloud.google.com/storage/pricing (Standard, us-central1)"
            .into(),
        vcpu_hour: 0.031611,
        memory_gib_hour: 0.004237,
        gpu_hour: [("t4", 0.35), ("v100", 2.48), ("a100", 2.933908)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        storage_gib_month: 0.020,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_table_says_when_and_where_from() {
        let p = Prices::shipped();
        assert_eq!(p.tables().len(), 2);
        for t in p.tables() {
            assert_eq!(t.as_of.len(), 10, "{}", t.name);
            assert!(t.source.starts_with("https://"), "{}", t.name);
            assert!(t.vcpu_hour > 0.0 && t.memory_gib_hour > 0.0);
            assert!(t.gpu("t4").is_ok());
        }
        assert!(p.get(DEFAULT_MACHINE).is_ok());
    }

    #[test]
    fn overrides_replace_a_table_of_the_same_name_and_add_others() {
        let mut cheap = aws_us_east_1();
        cheap.vcpu_hour = 0.01;
        let mut own = gcp_us_central1();
        own.name = "on-prem".into();
        let p = Prices::shipped().overlay(vec![cheap, own]);
        assert_eq!(p.get("aws-us-east-1").unwrap().vcpu_hour, 0.01);
        assert!(p.get("on-prem").is_ok());
        assert_eq!(p.tables().len(), 3);
    }
}
