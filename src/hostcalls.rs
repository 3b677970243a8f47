//! hostcalls
