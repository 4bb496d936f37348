//! A runtime that runs nothing: it records each call and answers from a script. For tests of
//! the lifecycle decisions without root or a kernel.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use super::{ExecHandle, Runtime, StdioFds};
use crate::{EngineError, Result};

/// One call made to a [`FakeRuntime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `create(id, …)`.
    Create(String),
    /// `start(id)`.
    Start(String),
    /// `delete(id)`.
    Delete(String),
    /// `exec(id, …)`.
    Exec(String),
}

/// A scripted runtime: containers "exist" between `create` and `delete`; `fail_on` makes the
/// named operation (`"create"`, `"start"`, `"delete"`, `"exec"`) fail with a runtime error.
#[derive(Debug, Default)]
pub struct FakeRuntime {
    calls: RefCell<Vec<Call>>,
    created: RefCell<BTreeMap<String, i32>>,
    next_pid: RefCell<i32>,
    fail_on: RefCell<Vec<&'static str>>,
}

impl FakeRuntime {
    /// A fake runtime whose first container gets pid 1000.
    pub fn new() -> Self {
        FakeRuntime {
            next_pid: RefCell::new(1000),
            ..Default::default()
        }
    }

    /// Make every later call of operation `op` fail.
    pub fn fail_on(&self, op: &'static str) {
        self.fail_on.borrow_mut().push(op);
    }

    /// The calls made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// Whether container `id` is created and not deleted.
    pub fn exists(&self, id: &str) -> bool {
        self.created.borrow().contains_key(id)
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.fail_on.borrow().contains(&op) {
            return Err(EngineError::Runtime(format!("fake runtime: {op} failed")));
        }
        Ok(())
    }
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &str {
        "fake"
    }

    fn create(
        &self,
        id: &str,
        _bundle: &Path,
        _stdio: StdioFds,
        _console_socket: Option<&Path>,
    ) -> Result<i32> {
        self.calls.borrow_mut().push(Call::Create(id.to_string()));
        self.check("create")?;
        if self.exists(id) {
            return Err(EngineError::Runtime(format!(
                "container {id} already exists"
            )));
        }
        let mut next = self.next_pid.borrow_mut();
        let pid = *next;
        *next += 1;
        self.created.borrow_mut().insert(id.to_string(), pid);
        Ok(pid)
    }

    fn start(&self, id: &str) -> Result<()> {
        self.calls.borrow_mut().push(Call::Start(id.to_string()));
        self.check("start")?;
        if !self.exists(id) {
            return Err(EngineError::Runtime(format!(
                "container {id} does not exist"
            )));
        }
        Ok(())
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.calls.borrow_mut().push(Call::Delete(id.to_string()));
        self.check("delete")?;
        self.created.borrow_mut().remove(id);
        Ok(())
    }

    fn exec(
        &self,
        id: &str,
        _process_json: &Path,
        _stdio: StdioFds,
        _console_socket: Option<&Path>,
    ) -> Result<ExecHandle> {
        self.calls.borrow_mut().push(Call::Exec(id.to_string()));
        self.check("exec")?;
        match self.created.borrow().get(id) {
            Some(pid) => Ok(ExecHandle::Pid(pid + 10_000)),
            None => Err(EngineError::Runtime(format!(
                "container {id} does not exist"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_start_delete_follow_the_oci_lifecycle() {
        let rt = FakeRuntime::new();
        let pid = rt
            .create("a", Path::new("/b"), StdioFds::default(), None)
            .unwrap();
        assert_eq!(pid, 1000);
        assert!(rt.start("a").is_ok());
        assert!(rt
            .create("a", Path::new("/b"), StdioFds::default(), None)
            .is_err());
        rt.delete("a").unwrap();
        rt.delete("a").unwrap();
        assert!(rt.start("a").is_err());
        assert_eq!(
            rt.calls(),
            vec![
                Call::Create("a".into()),
                Call::Start("a".into()),
                Call::Create("a".into()),
                Call::Delete("a".into()),
                Call::Delete("a".into()),
                Call::Start("a".into()),
            ]
        );
    }

    #[test]
    fn scripted_failures() {
        let rt = FakeRuntime::new();
        rt.fail_on("start");
        rt.create("a", Path::new("/b"), StdioFds::default(), None)
            .unwrap();
        assert!(matches!(rt.start("a"), Err(EngineError::Runtime(_))));
    }
}
