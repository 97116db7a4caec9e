//! `yichuang user …`: clerks' accounts for the web pages and the API.

use std::io::{BufRead, Read};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use super::{DirArg, print_json};
use crate::store::Store;
use crate::store::users::PASSWORD_MAX_BYTES;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a clerk (or reset one's password and role). The password is read from
    /// standard input, one line, so it never shows in the process list or history.
    Add {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        name: String,
        /// clerk, supervisor or admin.
        #[arg(long, default_value = "clerk")]
        role: String,
    },
    /// List accounts (names and roles; never a password).
    List {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        json: bool,
    },
}

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(PASSWORD_MAX_BYTES as u64 + 2)
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!(
            "give the password on standard input, e.g. `echo 'secret-pass' | yichuang user add …`"
        );
    }
    Ok(password)
}

pub fn run(command: UserCommand) -> Result<()> {
    match command {
        UserCommand::Add { dir, name, role } => {
            let role = role.parse()?;
            let store = Store::open(&dir.dir)?;
            let password = read_password()?;
            store.user_add(&name, role, &password)?;
            crate::outln!("user {name} ({role}) saved");
            Ok(())
        }
        UserCommand::List { dir, json } => {
            let store = Store::open(&dir.dir)?;
            let users = store.users()?;
            if json {
                return print_json(&users);
            }
            for u in users {
                crate::outln!("{}\t{}", u.name, u.role);
            }
            Ok(())
        }
    }
}
