//! The dependency graph: which definitions cannot run because of their dependencies
//! (a cycle, a required service that does not exist or is itself broken).
//!
//! Edges are `requires` (must be ready first) and `after` (ordering only, if it runs at all).
//! Start order itself is decided at run time: a service starts once every dependency that
//! will run is ready, so independent services start in parallel.

use super::definition::{Definition, DefinitionError};
use std::collections::{BTreeMap, BTreeSet};

/// For every service that cannot run because of the graph, the reason.
/// `broken` holds the services that are already broken for other reasons.
pub fn check(defs: &BTreeMap<String, Definition>, broken: &BTreeSet<String>) -> BTreeMap<String, DefinitionError> {
    let mut out = BTreeMap::new();
    for cycle in cycles(defs) {
        let text = format!("{} -> {}", cycle.join(" -> "), cycle[0]);
        for name in &cycle {
            out.insert(name.clone(), DefinitionError::Cycle(text.clone()));
        }
    }
    // Spread "cannot run" along `requires` until nothing changes.
    loop {
        let mut changed = false;
        for (name, def) in defs {
            if out.contains_key(name) {
                continue;
            }
            for dep in &def.requires {
                let why = if broken.contains(dep) || out.contains_key(dep) {
                    "is broken"
                } else if !defs.contains_key(dep) {
                    "does not exist"
                } else {
                    continue;
                };
                out.insert(name.clone(), DefinitionError::BadDependency { dep: dep.clone(), why: why.into() });
                changed = true;
                break;
            }
        }
        if !changed {
            return out;
        }
    }
}

fn edges<'a>(def: &'a Definition, defs: &BTreeMap<String, Definition>) -> impl Iterator<Item = &'a String> {
    let known: BTreeSet<&String> = def.requires.iter().chain(&def.after).filter(|d| defs.contains_key(*d)).collect();
    known.into_iter()
}

/// Every cycle's members (strongly connected components with more than one member, or a
/// service that depends on itself), each in a stable order.
fn cycles(defs: &BTreeMap<String, Definition>) -> Vec<Vec<String>> {
    // Tarjan's algorithm, iterative enough for a few hundred services.
    struct T<'a> {
        defs: &'a BTreeMap<String, Definition>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let Some(def) = self.defs.get(v) else { return };
            for w in edges(def, self.defs) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                let self_loop = self.defs.get(v).is_some_and(|d| d.requires.iter().chain(&d.after).any(|x| x == v));
                if comp.len() > 1 || self_loop {
                    comp.reverse();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T { defs, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), next: 0, out: Vec::new() };
    for name in defs.keys() {
        if !t.index.contains_key(name.as_str()) {
            t.visit(name);
        }
    }
    t.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(requires: &[&str], after: &[&str]) -> Definition {
        let mut d: Definition = toml::from_str("command = \"/bin/true\"").expect("minimal definition");
        d.requires = requires.iter().map(|s| s.to_string()).collect();
        d.after = after.iter().map(|s| s.to_string()).collect();
        d
    }

    #[test]
    fn cycles_and_their_dependents_are_reported() {
        let mut defs = BTreeMap::new();
        defs.insert("a".to_string(), def(&["b"], &[]));
        defs.insert("b".to_string(), def(&[], &["c"]));
        defs.insert("c".to_string(), def(&["a"], &[]));
        defs.insert("d".to_string(), def(&["c"], &[]));
        defs.insert("e".to_string(), def(&[], &["a", "nosuch"]));
        defs.insert("f".to_string(), def(&["nosuch"], &[]));
        defs.insert("g".to_string(), def(&["broken"], &[]));
        defs.insert("h".to_string(), def(&["h"], &[]));
        let bad = check(&defs, &["broken".to_string()].into());
        assert_eq!(bad.get("a"), Some(&DefinitionError::Cycle("a -> b -> c -> a".into())));
        assert!(matches!(bad.get("c"), Some(DefinitionError::Cycle(_))));
        assert!(matches!(bad.get("d"), Some(DefinitionError::BadDependency { dep, .. }) if dep == "c"));
        assert!(!bad.contains_key("e"), "`after` a broken or unknown service only orders");
        assert!(matches!(bad.get("f"), Some(DefinitionError::BadDependency { why, .. }) if why == "does not exist"));
        assert!(matches!(bad.get("g"), Some(DefinitionError::BadDependency { why, .. }) if why == "is broken"));
        assert!(matches!(bad.get("h"), Some(DefinitionError::Cycle(_))));
    }
}
