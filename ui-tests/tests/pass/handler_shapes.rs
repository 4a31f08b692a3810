// Every handler shape the contract allows compiles and runs: sync/async, `&self`/`&mut self`,
// `&E`/`E`, with/without `ctx`, thread handlers with and without `Ctx`, process handlers
// (declared only: a router with one refuses to start today), and every return form, among
// them `Result` with a custom error type that converts into `Failure`.

use edri::prelude::*;

/// A custom handler error, turned into a `Failure` by the `From` impl below.
#[derive(Debug)]
pub enum CalcError {
    DivisionByZero,
    Negative(i64),
}

impl From<CalcError> for Failure {
    fn from(e: CalcError) -> Self {
        match e {
            CalcError::DivisionByZero => Failure::invalid("division by zero"),
            CalcError::Negative(n) => Failure::new(Status::Conflict, format!("{n} is negative")),
        }
    }
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Add {
    pub n: i64,
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Sub {
    pub n: i64,
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Mul {
    pub n: i64,
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Check {
    pub n: i64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Get {
    #[response]
    pub value: i64,
    #[response]
    pub seen: u64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Divide {
    pub a: i64,
    pub b: i64,
    #[response]
    pub quotient: i64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Sqrt {
    pub n: i64,
    #[response]
    pub root: i64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Reset;

#[event(request)]
#[derive(Debug, Clone)]
pub struct Echo {
    pub text: String,
    #[response]
    pub text_back: String,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Len {
    pub text: String,
    #[response]
    pub len: usize,
}

#[event(request, response = u64)]
#[derive(Debug, Clone)]
pub struct Double {
    pub n: u64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Sum {
    pub items: Vec<u64>,
    #[response]
    pub sum: u64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Parse {
    pub text: String,
    #[response]
    pub n: i64,
}

#[event(request)]
#[derive(Debug, Clone)]
pub struct Hash {
    pub data: Vec<u8>,
    #[response]
    pub hash: u64,
}

#[event(notification)]
#[derive(Debug, Clone)]
pub struct Log {
    pub line: String,
}

#[derive(Default)]
pub struct Calc {
    value: i64,
    seen: u64,
    started: bool,
}

#[manager(queue = fifo, capacity = 64, name = "shapes.Calc")]
impl Calc {
    // sync, &mut self, &E, no ctx, notification -> ()
    #[solve]
    fn add(&mut self, ev: &Add) {
        self.value += ev.n;
        self.seen += 1;
    }

    // sync, &mut self, E by value, ctx, notification -> Result<(), custom error>
    #[solve(inline)]
    fn sub(&mut self, ev: Sub, ctx: &Ctx) -> Result<(), CalcError> {
        let _ = ctx;
        self.seen += 1;
        if ev.n < 0 {
            return Err(CalcError::Negative(ev.n));
        }
        self.value -= ev.n;
        Ok(())
    }

    // async, &mut self, &E, ctx, notification -> Result<(), Failure>
    #[solve]
    async fn mul(&mut self, ev: &Mul, ctx: &Ctx) -> Result<(), Failure> {
        let _ = ctx;
        self.value *= ev.n;
        self.seen += 1;
        Ok(())
    }

    // async, &self, E destructured by a pattern, no ctx, notification -> ()
    #[solve]
    async fn check(&self, Check { n }: Check) {
        let _ = (n, self.value);
    }

    // the built-in `Started` notification
    #[solve]
    fn started(&mut self, _: &Started) {
        self.started = true;
    }

    // sync, &self, &E, no ctx, request -> Response
    #[solve]
    fn get(&self, _: &Get) -> GetResponse {
        GetResponse { value: self.value, seen: self.seen + u64::from(self.started) * 1000 }
    }

    // sync, &mut self, &E, no ctx, request -> Result<Response, custom error>
    #[solve]
    fn divide(&mut self, ev: &Divide) -> Result<DivideResponse, CalcError> {
        if ev.b == 0 {
            return Err(CalcError::DivisionByZero);
        }
        Ok(DivideResponse { quotient: ev.a / ev.b })
    }

    // async, &self, E, ctx, request -> Result<Response<E>, Failure> (through the alias)
    #[solve]
    async fn sqrt(&self, ev: Sqrt, ctx: &Ctx) -> Result<Response<Sqrt>, Failure> {
        let _ = ctx;
        if ev.n < 0 {
            return Err(Failure::invalid("negative"));
        }
        Ok(SqrtResponse { root: (ev.n as f64).sqrt() as i64 })
    }

    // async, &mut self, &E, no ctx, request with a unit response
    #[solve]
    async fn reset(&mut self, _: &Reset) -> ResetResponse {
        self.value = 0;
        ResetResponse
    }

    // sync, &self, E, ctx, request -> Response
    #[solve]
    fn echo(&self, ev: Echo, ctx: &Ctx) -> EchoResponse {
        let _ = ctx;
        EchoResponse { text_back: ev.text }
    }

    // async, &mut self, E, no ctx, request -> Result<Response, String>
    #[solve]
    async fn len(&mut self, ev: Len) -> Result<LenResponse, String> {
        Ok(LenResponse { len: ev.text.len() })
    }

    // sync, &self, &E, ctx, request with `response = u64`
    #[solve]
    fn double(&self, ev: &Double, ctx: &Ctx) -> u64 {
        let _ = ctx;
        ev.n * 2
    }
}

#[derive(Default)]
pub struct Workers;

#[manager(capacity = 8)]
impl Workers {
    // thread, no ctx, -> Response
    #[solve(thread)]
    fn sum(ev: Sum) -> SumResponse {
        SumResponse { sum: ev.items.iter().sum() }
    }

    // thread, ctx, limit, -> Result<Response, custom error>
    #[solve(thread, limit = 2)]
    fn parse(ev: Parse, ctx: Ctx) -> Result<ParseResponse, CalcError> {
        let _ = ctx;
        let n: i64 = ev.text.trim().parse().map_err(|_| CalcError::DivisionByZero)?;
        if n < 0 {
            return Err(CalcError::Negative(n));
        }
        Ok(ParseResponse { n })
    }

    // thread, ctx, notification -> Result<(), Failure>
    #[solve(thread, limit = 1)]
    fn log(ev: Log, ctx: Ctx) -> Result<(), Failure> {
        let _ = (ev.line, ctx);
        Ok(())
    }
}

/// Process handlers: declared, never started (a router with one refuses to start today).
pub struct Isolated;

#[manager(manual)]
impl Isolated {
    #[solve(process)]
    fn hash(ev: Hash) -> HashResponse {
        HashResponse { hash: ev.data.iter().map(|b| u64::from(*b)).sum() }
    }

    #[solve(process, limit = 2)]
    fn len(ev: Len, ctx: Ctx) -> Result<LenResponse, Failure> {
        let _ = ctx;
        Ok(LenResponse { len: ev.text.len() })
    }
}

#[edri::main(flavor = "current_thread")]
async fn main() -> edri::Result<()> {
    let running =
        Edri::builder().only_explicit().manager(Calc::default()).manager(Workers).start().await?;
    let ctx = running.ctx();

    ctx.notify(Add { n: 10 }).await.unwrap();
    ctx.notify(Sub { n: 3 }).await.unwrap();
    ctx.notify(Sub { n: -1 }).await.unwrap(); // fails in the handler: logged, value unchanged
    ctx.notify(Mul { n: 2 }).await.unwrap();
    ctx.notify(Check { n: 0 }).await.unwrap();
    let got = ctx.request(Get {}).await.unwrap();
    assert_eq!(got.value, 14);
    assert_eq!(got.seen, 1004);

    assert_eq!(ctx.request(Divide { a: 9, b: 2 }).await.unwrap().quotient, 4);
    let err = ctx.request(Divide { a: 1, b: 0 }).await.unwrap_err();
    assert_eq!(err.status(), Status::Invalid);
    assert_eq!(ctx.request(Sqrt { n: 16 }).await.unwrap().root, 4);
    assert_eq!(ctx.request(Sqrt { n: -1 }).await.unwrap_err().status(), Status::Invalid);
    ctx.request(Reset).await.unwrap();
    assert_eq!(ctx.request(Get {}).await.unwrap().value, 0);
    let echo = ctx.request(Echo { text: "hi".into() }).await.unwrap();
    assert_eq!(echo.text_back, "hi");
    assert_eq!(ctx.request(Len { text: "four".into() }).await.unwrap().len, 4);
    assert_eq!(ctx.request(Double { n: 21 }).await.unwrap(), 42);

    let sum = ctx.request(Sum { items: vec![1, 2, 3] }).await.unwrap();
    assert_eq!(sum.sum, 6);
    assert_eq!(ctx.request(Parse { text: " 7 ".into() }).await.unwrap().n, 7);
    let err = ctx.request(Parse { text: "-7".into() }).await.unwrap_err();
    assert_eq!(err.status(), Status::Conflict);
    ctx.notify(Log { line: "done".into() }).await.unwrap();

    running.shutdown().await
}
