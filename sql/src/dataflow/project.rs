//! SELECT list: compute the output columns of each change.

use super::{Change, Metrics};
use crate::expr::Expr;

#[derive(Debug)]
pub struct Project {
    pub exprs: Vec<Expr>,
}

impl Project {
    pub fn process(
        &mut self,
        input: &mut Vec<Change>,
        out: &mut Vec<Change>,
        metrics: &mut Metrics,
    ) {
        'rows: for c in input.drain(..) {
            let mut row = Vec::with_capacity(self.exprs.len());
            for e in &self.exprs {
                match e.eval(&c.row) {
                    Ok(v) => row.push(v),
                    Err(err) => {
                        metrics.error(err);
                        continue 'rows;
                    }
                }
            }
            out.push(Change {
                row,
                time: c.time,
                diff: c.diff,
            });
        }
    }
}
