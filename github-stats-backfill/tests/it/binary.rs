//! The real binary: exit codes, the dotenv file, and Ctrl-C.
