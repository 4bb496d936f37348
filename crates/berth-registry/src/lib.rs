//! OCI distribution client: pull, push, login. See the registry issue for scope.
