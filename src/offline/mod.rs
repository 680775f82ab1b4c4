//! `netpol-guard check` over files: manifests split into documents (`manifest`), where each
//! field sits in the file (`positions`), kustomize patch files set aside (`kustomize`), the
//! judgement (`check`), the connectivity listing, diff and explanation (`connectivity`), the DNS fix as a text edit (`fix`) and the reports (`report`).

pub mod check;
pub mod connectivity;
pub(crate) mod fix;
pub(crate) mod kustomize;
pub mod manifest;
pub(crate) mod positions;
pub(crate) mod report;
