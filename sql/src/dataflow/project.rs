//! SELECT list: compute the output columns of each change.

use super::{Change, Metrics};
use crate::expr::Expr;
use crate::Value;

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
        let width = self.exprs.len();
        if self.is_leading_columns() {
            out.extend(input.drain(..).map(|mut c| {
                c.row.truncate(width);
                c
            }));
            return;
        }
        // A column that is only itself, once, moves out of its input row
        // instead of being copied (the input rows are dropped after this).
        let moved = self.moved_columns();
        'rows: for mut c in input.drain(..) {
            let mut row = Vec::with_capacity(width);
            for (e, &moved) in self.exprs.iter().zip(&moved) {
                match e {
                    Expr::Column(i) if moved => {
                        row.push(c.row.get_mut(*i).map(std::mem::take).unwrap_or(Value::Null))
                    }
                    e => match e.eval(&c.row) {
                        Ok(v) => row.push(v),
                        Err(err) => {
                            metrics.error(err);
                            continue 'rows;
                        }
                    },
                }
            }
            out.push(Change::new(row, c.time, c.diff));
        }
    }

    /// Whether it selects the leading input columns in order (`SELECT *`):
    /// each input row, cut to length, is its output row.
    pub fn is_leading_columns(&self) -> bool {
        self.exprs
            .iter()
            .enumerate()
            .all(|(i, e)| matches!(e, Expr::Column(c) if *c == i))
    }

    /// Per expression: whether it is a bare column that no other
    /// expression reads, so taking it out of the input row changes nothing
    /// else's value.
    fn moved_columns(&self) -> Vec<bool> {
        let mut reads: Vec<usize> = Vec::new();
        for e in &self.exprs {
            e.visit(&mut |e| {
                if let Expr::Column(c) = e {
                    if reads.len() <= *c {
                        reads.resize(c + 1, 0);
                    }
                    reads[*c] += 1;
                }
            });
        }
        self.exprs
            .iter()
            .map(|e| matches!(e, Expr::Column(c) if reads.get(*c) == Some(&1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataflow::Metrics;
    use crate::expr::BinaryOp;

    fn project(exprs: Vec<Expr>) -> Vec<Vec<Value>> {
        let mut input = vec![
            Change::insert(vec![Value::str("a"), Value::BigInt(1), Value::str("c")], 5),
            Change::insert(vec![Value::str("x"), Value::BigInt(2), Value::Null], 6),
        ];
        let mut out = Vec::new();
        Project { exprs }.process(&mut input, &mut out, &mut Metrics::default());
        assert!(input.is_empty());
        assert_eq!(out.iter().map(|c| c.time).collect::<Vec<_>>(), [5, 6]);
        out.into_iter().map(|c| c.row).collect()
    }

    #[test]
    fn leading_columns_keep_their_rows_and_other_columns_are_moved_or_copied() {
        let (a, b, c) = (Expr::Column(0), Expr::Column(1), Expr::Column(2));
        assert_eq!(
            project(vec![a.clone(), b.clone()]),
            [
                vec![Value::str("a"), Value::BigInt(1)],
                vec![Value::str("x"), Value::BigInt(2)]
            ]
        );
        // Read twice: copied, not moved out from under the second read.
        let doubled = Expr::Binary {
            op: BinaryOp::Add,
            left: Box::new(b.clone()),
            right: Box::new(b.clone()),
        };
        assert_eq!(
            project(vec![c, b.clone(), a, doubled, b]),
            [
                vec![
                    Value::str("c"),
                    Value::BigInt(1),
                    Value::str("a"),
                    Value::BigInt(2),
                    Value::BigInt(1)
                ],
                vec![
                    Value::Null,
                    Value::BigInt(2),
                    Value::str("x"),
                    Value::BigInt(4),
                    Value::BigInt(2)
                ]
            ]
        );
    }
}
