//! WHERE and HAVING: keep the changes whose row satisfies a predicate.
//! Applied to retractions too, so a row that stops matching is retracted.

use super::{Change, Metrics};
use crate::expr::Expr;

#[derive(Debug)]
pub struct Filter {
    pub predicate: Expr,
}

impl Filter {
    pub fn process(
        &mut self,
        input: &mut Vec<Change>,
        out: &mut Vec<Change>,
        metrics: &mut Metrics,
    ) {
        for c in input.drain(..) {
            match self.predicate.eval_predicate(&c.row) {
                Ok(true) => out.push(c),
                Ok(false) => {}
                Err(e) => metrics.error(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::BinaryOp;
    use crate::value::Value;

    #[test]
    fn keeps_matching_inserts_and_retractions() {
        let mut f = Filter {
            predicate: Expr::Binary {
                op: BinaryOp::Gt,
                left: Box::new(Expr::Column(0)),
                right: Box::new(Expr::Literal(Value::Int(1))),
            },
        };
        let mut input = vec![
            Change::insert(vec![Value::Int(1)], 0),
            Change::insert(vec![Value::Int(2)], 0),
            Change::retract(vec![Value::Int(3)], 0),
            Change::insert(vec![Value::Null], 0),
        ];
        let mut out = Vec::new();
        f.process(&mut input, &mut out, &mut Metrics::default());
        assert_eq!(
            out,
            vec![
                Change::insert(vec![Value::Int(2)], 0),
                Change::retract(vec![Value::Int(3)], 0)
            ]
        );
    }
}
