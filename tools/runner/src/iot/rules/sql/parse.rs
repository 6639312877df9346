//! IoT SQL text to a [`Statement`]: the tokenizer and a recursive-descent parser of the
//! subset described in the parent module, with the reason for anything it refuses.

use serde_json::Value;

use super::{Condition, Expr, Op, SelectItem, Statement};
use crate::iot::topic;

/// Parses one statement, or says what is wrong with it.
pub(super) fn statement(sql: &str) -> Result<Statement, String> {
    Parser {
        tokens: tokenize(sql)?,
        at: 0,
    }
    .statement()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(f64),
    Symbol(&'static str),
}

fn tokenize(sql: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            tokens.push(Token::Number(
                text.parse()
                    .map_err(|_| format!("{text:?} is not a number"))?,
            ));
        } else if c == '\'' {
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a string is not closed with '".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        text.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Text(text));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let symbol = match two.as_str() {
                "<>" => Some("<>"),
                "!=" => Some("!="),
                "<=" => Some("<="),
                ">=" => Some(">="),
                _ => None,
            };
            if let Some(symbol) = symbol {
                tokens.push(Token::Symbol(symbol));
                i += 2;
                continue;
            }
            let symbol = match c {
                '(' => "(",
                ')' => ")",
                ',' => ",",
                '.' => ".",
                '*' => "*",
                '=' => "=",
                '<' => "<",
                '>' => ">",
                other => return Err(format!("unexpected character {other:?}")),
            };
            tokens.push(Token::Symbol(symbol));
            i += 1;
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

const KEYWORDS: [&str; 7] = ["SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT"];

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), String> {
        if self.is_keyword(keyword) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!(
                "expected {keyword}, found {}",
                describe(self.peek())
            ))
        }
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        if self.peek() == Some(&Token::Symbol(leak(symbol))) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn statement(&mut self) -> Result<Statement, String> {
        self.keyword("SELECT")?;
        let mut select = vec![self.select_item()?];
        while self.symbol(",") {
            select.push(self.select_item()?);
        }
        self.keyword("FROM")?;
        let from = match self.next() {
            Some(Token::Text(filter)) => filter,
            other => {
                return Err(format!(
                    "FROM takes a quoted topic filter, found {}",
                    describe(other.as_ref())
                ));
            }
        };
        topic::check_filter(&from)?;
        let condition = if self.is_keyword("WHERE") {
            self.at += 1;
            Some(self.or()?)
        } else {
            None
        };
        if let Some(extra) = self.peek() {
            return Err(format!(
                "{} is not supported by the local runner (it knows SELECT, FROM and WHERE)",
                describe(Some(extra))
            ));
        }
        Ok(Statement {
            select,
            from,
            condition,
        })
    }

    fn select_item(&mut self) -> Result<SelectItem, String> {
        if self.symbol("*") {
            return Ok(SelectItem::All);
        }
        let expr = self.expr()?;
        let alias = if self.is_keyword("AS") {
            self.at += 1;
            match self.next() {
                Some(Token::Word(alias)) => alias,
                other => {
                    return Err(format!(
                        "AS takes a name, found {}",
                        describe(other.as_ref())
                    ));
                }
            }
        } else {
            match &expr {
                Expr::Field(path) => path.last().cloned().unwrap_or_default(),
                _ => return Err(format!("give {expr:?} a name with AS")),
            }
        };
        Ok(SelectItem::Expr { expr, alias })
    }

    /// The rest of `encode(*, 'base64')`, the one form the runner plays: the payload's
    /// bytes whatever they are, as IoT Core's binary-payload guide hands them to a Lambda
    /// action.
    fn encode(&mut self) -> Result<Expr, String> {
        let star = self.symbol("*");
        let comma = star && self.symbol(",");
        let scheme = match (comma, self.next()) {
            (true, Some(Token::Text(scheme))) => scheme,
            (_, other) => {
                return Err(format!(
                    "encode() is supported as encode(*, 'base64'), found {}",
                    describe(other.as_ref())
                ));
            }
        };
        if scheme != "base64" || !self.symbol(")") {
            return Err(format!(
                "encode() is supported as encode(*, 'base64'), found encoding '{scheme}'"
            ));
        }
        Ok(Expr::PayloadBase64)
    }

    fn expr(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Text(text)) => Ok(Expr::Literal(Value::String(text))),
            Some(Token::Number(n)) => Ok(Expr::Literal(
                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
            )),
            Some(Token::Word(word)) if KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k)) => {
                Err(format!("expected an expression, found {word}"))
            }
            Some(Token::Word(word)) if self.peek() == Some(&Token::Symbol("(")) => {
                self.at += 1;
                let name = word.to_ascii_lowercase();
                if name == "encode" {
                    return self.encode();
                }
                if !["topic", "timestamp", "sourceip", "clientid"].contains(&name.as_str()) {
                    return Err(format!(
                        "function {name}() is not supported by the local runner \
                         (it knows topic(), topic(n), timestamp(), sourceip(), clientid(), \
                         encode(*, 'base64'))"
                    ));
                }
                let argument = match self.peek() {
                    Some(Token::Number(n)) => {
                        let n = *n;
                        self.at += 1;
                        Some(n)
                    }
                    _ => None,
                };
                if !self.symbol(")") {
                    return Err(format!("{word}( takes at most one number and a )"));
                }
                match (name.as_str(), argument) {
                    ("topic", None) => Ok(Expr::Topic(None)),
                    ("topic", Some(n)) if n >= 1.0 && n.fract() == 0.0 => {
                        Ok(Expr::Topic(Some(n as usize)))
                    }
                    ("timestamp", None) => Ok(Expr::Timestamp),
                    ("sourceip", None) => Ok(Expr::SourceIp),
                    ("clientid", None) => Ok(Expr::ClientId),
                    ("topic", Some(n)) => Err(format!("topic(n) takes a level from 1, got {n}")),
                    (name, Some(n)) => Err(format!("{name}() takes no argument, got {n}")),
                    (name, None) => Err(format!("unknown function {name}()")),
                }
            }
            Some(Token::Word(word)) => {
                let mut path = vec![word];
                while self.symbol(".") {
                    match self.next() {
                        Some(Token::Word(part)) => path.push(part),
                        other => {
                            return Err(format!(
                                "expected a field name after '.', found {}",
                                describe(other.as_ref())
                            ));
                        }
                    }
                }
                Ok(Expr::Field(path))
            }
            other => Err(format!(
                "expected an expression, found {}",
                describe(other.as_ref())
            )),
        }
    }

    fn or(&mut self) -> Result<Condition, String> {
        let mut left = self.and()?;
        while self.is_keyword("OR") {
            self.at += 1;
            left = Condition::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Condition, String> {
        let mut left = self.unary()?;
        while self.is_keyword("AND") {
            self.at += 1;
            left = Condition::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Condition, String> {
        if self.is_keyword("NOT") {
            self.at += 1;
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.symbol("(") {
            let inner = self.or()?;
            if !self.symbol(")") {
                return Err("a ( is not closed".into());
            }
            return Ok(inner);
        }
        let left = self.expr()?;
        let op = match self.next() {
            Some(Token::Symbol("=")) => Op::Eq,
            Some(Token::Symbol("<>" | "!=")) => Op::Ne,
            Some(Token::Symbol("<")) => Op::Lt,
            Some(Token::Symbol("<=")) => Op::Le,
            Some(Token::Symbol(">")) => Op::Gt,
            Some(Token::Symbol(">=")) => Op::Ge,
            other => {
                return Err(format!(
                    "expected a comparison (= <> != < <= > >=), found {}",
                    describe(other.as_ref())
                ));
            }
        };
        Ok(Condition::Compare(left, op, self.expr()?))
    }
}

/// The static form of a symbol, for comparing with tokens.
fn leak(symbol: &str) -> &'static str {
    [
        "(", ")", ",", ".", "*", "=", "<", ">", "<>", "!=", "<=", ">=",
    ]
    .into_iter()
    .find(|s| *s == symbol)
    .unwrap_or("")
}

fn describe(token: Option<&Token>) -> String {
    match token {
        None => "the end".into(),
        Some(Token::Word(w)) => w.clone(),
        Some(Token::Text(t)) => format!("'{t}'"),
        Some(Token::Number(n)) => n.to_string(),
        Some(Token::Symbol(s)) => (*s).to_string(),
    }
}
