//! `yichuang backup` and `yichuang restore`: a consistent copy of a node's data file,
//! and putting one back under a new feed epoch.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use super::{DirArg, print_json};
use crate::store::{Store, backup};

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// The file to write; it must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// A file written by `yichuang backup` of this node.
    #[arg(long)]
    pub from: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn backup(args: BackupArgs) -> Result<()> {
    let store = Store::open(&args.dir.dir)?;
    let info = store.backup_to(&args.out)?;
    if args.json {
        return print_json(&info);
    }
    crate::outln!(
        "backed up {} cases ({} stored changes) to {} ({} bytes)",
        info.cases,
        info.feed_head,
        info.file.display(),
        info.bytes
    );
    Ok(())
}

pub fn restore(args: RestoreArgs) -> Result<()> {
    let dir = &args.dir.dir;
    if crate::serve::read_status(dir).is_some_and(|l| l.running && super::net::pid_alive(l.pid)) {
        bail!(
            "the node in {} is running (yichuang serve); stop it before restoring",
            dir.display()
        );
    }
    let info = backup::restore(dir, &args.from)?;
    if args.json {
        return print_json(&info);
    }
    crate::outln!(
        "restored node {}: {} cases, {} stored changes, new feed epoch; its peers will reconcile with it and send back what it made after the backup",
        info.node_id,
        info.cases,
        info.feed_head
    );
    if let Some(kept) = &info.kept {
        crate::outln!("the replaced data file is kept at {}", kept.display());
    }
    Ok(())
}
