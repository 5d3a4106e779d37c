//! Integration tests of the IPL v1 compiler: one binary, one module per area.

mod ipl {
    mod compiled;
    mod conformance;
    mod errors;
    mod formatter;
    mod parser;
    mod review;
    mod robustness;
    mod stratification;

    /// The example schema of ARCHITECTURE.md section 6.
    pub const ARCHITECTURE_EXAMPLE: &str = "// one schema per vault
type user {}

type group {
    relation member: user | group#member        // direct relation, allowed subject types
}

type folder {
    relation parent: folder
    relation viewer: user | user:* | group#member
    relation banned: user
    permission view = viewer | parent->view      // computed
}

type document {
    relation parent: folder
    relation owner: user
    relation editor: user | group#member
    relation blocked: user
    permission edit = owner | editor
    permission view = (edit | parent->view) - blocked
    forbid banned_here = parent->banned           // a forbid denies every permission of
                                                  // this type for subjects it matches
}
";
}
