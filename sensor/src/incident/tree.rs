//! An incident's processes as one tree, grown from its alerts' chains (oldest known
//! ancestor first): a process that several alerts share is one node, so each later
//! alert adds a branch.

use super::read::ProcessFields;
use rustc_hash::FxHashMap;

#[derive(Debug, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Nodes without a parent, in the order they came.
    pub roots: Vec<usize>,
    /// (parent node, pid) -> the nodes there: a storm puts thousands under one parent.
    index: FxHashMap<(Option<usize>, Option<u32>), Vec<usize>>,
}

#[derive(Debug)]
pub struct Node {
    pub process: ProcessFields,
    pub children: Vec<usize>,
    /// 0 for a root.
    pub depth: usize,
}

/// Where a chain went in.
pub struct Grown {
    /// The node of each process of the chain, top first.
    pub nodes: Vec<usize>,
    /// How many of them, from the top, were in the tree before.
    pub known: usize,
}

impl Tree {
    /// Adds a chain, top first: each process is found under the node of the one
    /// before (same pid, no other program) or added there; what the chain knows of
    /// a process the tree had without it is added to its node.
    pub fn grow(&mut self, chain: &[ProcessFields]) -> Grown {
        let mut nodes = Vec::with_capacity(chain.len());
        let mut known = 0;
        let mut parent = None;
        for process in chain {
            let siblings = self.index.entry((parent, process.pid)).or_default();
            let found = siblings
                .iter()
                .copied()
                .find(|&n| self.nodes[n].process.same_process(process));
            let node = match found {
                Some(n) if known == nodes.len() => {
                    known += 1;
                    n
                }
                Some(n) => n,
                None => {
                    let n = self.nodes.len();
                    siblings.push(n);
                    self.nodes.push(Node {
                        process: process.clone(),
                        children: Vec::new(),
                        depth: nodes.len(),
                    });
                    match parent {
                        Some(p) => self.nodes[p].children.push(n),
                        None => self.roots.push(n),
                    }
                    n
                }
            };
            self.nodes[node].process.fill_from(process);
            nodes.push(node);
            parent = Some(node);
        }
        Grown { nodes, known }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, exe: &str) -> ProcessFields {
        ProcessFields {
            pid: Some(pid),
            exe: Some(exe.into()),
            ..ProcessFields::default()
        }
    }

    #[test]
    fn later_chains_add_branches_and_details() {
        let mut tree = Tree::default();
        let first = tree.grow(&[p(1, "w3wp.exe"), p(2, "cmd.exe")]);
        assert_eq!((first.nodes.as_slice(), first.known), (&[0, 1][..], 0));
        let mut detailed = p(2, "CMD.EXE");
        detailed.user = Some("IIS APPPOOL\\x".into());
        let second = tree.grow(&[p(1, "w3wp.exe"), detailed, p(3, "whoami.exe")]);
        assert_eq!((second.nodes.as_slice(), second.known), (&[0, 1, 2][..], 2));
        assert_eq!(
            tree.nodes[1].process.user.as_deref(),
            Some("IIS APPPOOL\\x")
        );
        assert_eq!(tree.nodes[2].depth, 2);
        // The same pid running another program is another process.
        let third = tree.grow(&[p(1, "w3wp.exe"), p(2, "powershell.exe")]);
        assert_eq!(third.known, 1);
        assert_eq!(tree.nodes[0].children, [1, 3]);
        assert_eq!(tree.roots, [0]);
        // Again, nothing new.
        assert_eq!(tree.grow(&[p(1, "w3wp.exe"), p(2, "cmd.exe")]).known, 2);
    }
}
