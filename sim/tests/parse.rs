//! The PTX parser on small modules, one construct at a time.

use lowp_sim::ErrorKind;
use lowp_sim::ir::{Addr, AtomOp, BoolOp, Cmp, Module, MulMode, Op, Rnd, ShflMode, Space, Src, Sreg, Ty, layout};
use lowp_sim::parse::parse_module;

const HEAD: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n";

fn parse(body: &str) -> Module {
    let text = format!("{HEAD}{body}");
    match parse_module(&text) {
        Ok(m) => m,
        Err(e) => panic!("{e}\n{text}"),
    }
}

/// An entry `k` with the given registers declared and body.
fn kernel(body: &str) -> Module {
    parse(&format!(
        ".visible .entry k(\n.param .align 8 .b8 k_param_0[16]\n)\n{{\n\
         .reg .pred %p<8>;\n.reg .b16 %rs<8>;\n.reg .b32 %r<32>;\n.reg .b64 %rd<16>;\n{body}\n}}\n"
    ))
}

fn ops(m: &Module) -> Vec<Op> {
    m.code.iter().map(|i| i.op.clone()).collect()
}

fn parse_err(body: &str) -> String {
    let e = parse_module(&format!("{HEAD}{body}")).expect_err("expected an error");
    assert_eq!(e.kind, ErrorKind::InvalidPtx);
    e.message
}

fn kernel_err(body: &str) -> String {
    parse_err(&format!(".visible .entry k()\n{{\n.reg .pred %p<4>;\n.reg .b32 %r<8>;\n.reg .b64 %rd<8>;\n{body}\n}}\n"))
}

#[test]
fn header_params_and_directives() {
    let m = parse(
        "// .globl k\n.extern .shared .align 16 .b8 smem[];\n\
         .visible .entry k(\n\t.param .u32 k_param_0,\n\t.param .align 8 .b8 k_param_1[24],\n\t.param .u16 k_param_2\n)\n\
         .maxntid 128, 2\n.minnctapersm 1\n{\n\t.reg .b32 %r<4>;\n\tld.param.u32 %r1, [k_param_0];\n\
         ld.param.b32 %r2, [k_param_1+20];\n\tld.param.u16 %r3, [k_param_2];\n\tret;\n}\n\
         .visible .entry j() .reqntid 64\n{\n\texit;\n}\n",
    );
    assert_eq!((m.version.as_str(), m.target.as_str()), ("8.0", "sm_90a"));
    let k = &m.functions[0];
    assert!(k.is_entry);
    assert_eq!(k.name, "k");
    let p: Vec<_> = k.params.iter().map(|p| (p.offset, p.size, p.align)).collect();
    assert_eq!(p, [(0, 4, 4), (8, 24, 8), (32, 2, 2)]);
    assert_eq!(k.param_bytes, 34);
    assert_eq!(k.frame_params, 0);
    assert_eq!(k.maxntid, Some([128, 2, 1]));
    assert_eq!(k.reqntid, None);
    assert_eq!((k.start, k.end, k.line), (0, 4, 6));
    assert_eq!(m.functions[1].reqntid, Some([64, 1, 1]));
    assert_eq!((m.functions[1].start, m.functions[1].end), (4, 5));
    let o = ops(&m);
    let param = |off, offset| Addr { base: Src::Imm(off), offset };
    assert!(matches!(&o[0], Op::Ld { space: Space::Param, ty: Ty::U32, d, addr } if d == &[0] && *addr == param(0, 0)));
    assert!(matches!(&o[1], Op::Ld { space: Space::Param, ty: Ty::B32, addr, .. } if *addr == param(8, 20)));
    assert!(matches!(&o[2], Op::Ld { space: Space::Param, ty: Ty::U16, addr, .. } if *addr == param(32, 0)));
    assert!(matches!(o[3], Op::Exit));
    assert!(matches!(o[4], Op::Exit));
    assert!(m.code.iter().take(4).all(|i| i.func == 0) && m.code[4].func == 1);
    assert_eq!(m.code[0].line, 15);
    assert_eq!(m.source_line(15), "ld.param.u32 %r1, [k_param_0];");
}

#[test]
fn registers_dense_and_scoped() {
    let m = kernel(
        ".reg .b32 %r17;\n.reg .b64 %SP;\n\
         mov.u32 %r17, %tid.x;\n\
         mov.u32 %r3, %r17;\n\
         mov.b64 %SP, %rd1;\n\
         { .reg .b32 %r3; mov.u32 %r3, 7; add.s32 %r17, %r3, %r3; }\n\
         { .reg .b32 t; .reg .pred p; mov.u32 t, 1; }\n\
         mov.u32 %r3, 1;",
    );
    let o = ops(&m);
    // %r17 (declared twice) is one register; indices are assigned at first use.
    let Op::Mov { d: r17, a: Src::Sreg(Sreg::Tid(0)), .. } = o[0] else { panic!("{:?}", o[0]) };
    let Op::Mov { d: r3, a: Src::Reg(a), .. } = o[1] else { panic!() };
    assert_eq!(a, r17);
    let Op::Mov { d: sp, .. } = o[2] else { panic!() };
    // The block's %r3 shadows the outer one.
    let Op::Mov { d: inner, a: Src::Imm(7), .. } = o[3] else { panic!() };
    assert_ne!(inner, r3);
    assert!(matches!(o[4], Op::Add { d, a: Src::Reg(x), b: Src::Reg(y), .. } if d == r17 && x == inner && y == inner));
    // A later block reuses the closed block's indices; the outer %r3 is back in scope after it.
    let Op::Mov { d: t, .. } = o[5] else { panic!() };
    assert_eq!(t, inner);
    assert!(matches!(o[6], Op::Mov { d, .. } if d == r3));
    let all = [r17, r3, sp, inner];
    assert!(all.iter().all(|r| *r < m.functions[0].reg_count));
    assert_eq!(m.functions[0].reg_count, 6, "r17, r3, SP, rd1, and two block registers");
}

#[test]
fn immediates() {
    let m = kernel(
        "mov.b32 %r1, -1;\nmov.b64 %rd1, -1;\nmov.b32 %r2, 0x3210U;\nmov.f32 %r3, 0f3F800000;\n\
         mov.f64 %rd2, 0d3FF0000000000000;\nadd.rn.f32 %r4, %r3, 0d3FF0000000000000;\nadd.rn.f64 %rd3, %rd2, 0f3F800000;\n\
         mov.pred %p1, -1;\nmov.pred %p2, 0;\nadd.s16 %rs1, %rs2, -2;\nprmt.b32 %r5, %r1, %r2, 0x3210U;\n\
         mov.b32 %r6, 017;\nmov.b32 %r7, 0b101;\nmov.f32 %r8, 0f00000000;\nselp.f32 %r9, 0f3F800000, 0f40000000, %p1;",
    );
    let imm = |i: usize| match &m.code[i].op {
        Op::Mov { a: Src::Imm(v), .. } => *v,
        Op::FAdd { b: Src::Imm(v), .. } => *v,
        Op::Add { b: Src::Imm(v), .. } => *v,
        Op::Prmt { c: Src::Imm(v), .. } => *v,
        o => panic!("{o:?}"),
    };
    assert_eq!(imm(0), 0xffff_ffff);
    assert_eq!(imm(1), u64::MAX);
    assert_eq!(imm(2), 0x3210);
    assert_eq!(imm(3), 0x3f80_0000);
    assert_eq!(imm(4), 0x3ff0_0000_0000_0000);
    assert_eq!(imm(5), 0x3f80_0000, "0d in an .f32 operand is rounded to f32");
    assert_eq!(imm(6), 0x3ff0_0000_0000_0000, "0f in an .f64 operand is widened");
    assert_eq!(imm(7), 1);
    assert_eq!(imm(8), 0);
    assert_eq!(imm(9), 0xfffe);
    assert_eq!(imm(10), 0x3210);
    assert_eq!(imm(11), 0o17);
    assert_eq!(imm(12), 5);
    assert_eq!(imm(13), 0);
    assert!(matches!(m.code[14].op, Op::Selp { a: Src::Imm(0x3f80_0000), b: Src::Imm(0x4000_0000), .. }));
}

#[test]
fn addresses_and_spaces() {
    let m = parse(
        ".shared .align 4 .b8 sa[10];\n.shared .align 8 .b8 sb[8];\n.extern .shared .align 4 .b8 dyn[];\n\
         .visible .entry k()\n{\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n\
         ld.b32 %r1, [%rd1];\nld.global.b32 %r1, [%rd1+4];\nst.shared.b32 [%rd1+-4], %r1;\nld.volatile.shared.b32 %r1, [dyn+8];\n\
         st.shared.u32 [sb], 3;\nmov.u64 %rd2, sa;\nmov.u32 %r2, dyn;\nld.const.b32 %r3, [0x10];\nld.local.b32 %r3, [%rd2-8];\n\
         ld.global.nc.v4.u32 {%r0, %r1, %r2, %r3}, [%rd1];\nst.global.v2.b32 [%rd1], {%r1, 5};\nld.s8 %r1, [%rd3];\n}\n",
    );
    assert_eq!(m.static_smem_bytes, 24);
    assert_eq!(m.dynamic_smem_offset, 32);
    let dyn_addr = layout::SHARED_BASE + 32;
    let o = ops(&m);
    let reg = |i: usize| match &o[i] {
        Op::Ld { addr: Addr { base: Src::Reg(r), .. }, .. } | Op::St { addr: Addr { base: Src::Reg(r), .. }, .. } => *r,
        x => panic!("{x:?}"),
    };
    let rd1 = reg(0);
    assert!(matches!(&o[0], Op::Ld { space: Space::Generic, addr: Addr { offset: 0, .. }, .. }));
    assert!(matches!(&o[1], Op::Ld { space: Space::Global, addr: Addr { offset: 4, .. }, .. }));
    assert!(matches!(&o[2], Op::St { space: Space::Shared, addr: Addr { offset: -4, .. }, .. }));
    assert_eq!(reg(2), rd1);
    assert!(
        matches!(&o[3], Op::Ld { space: Space::Shared, addr, .. } if *addr == Addr { base: Src::Imm(dyn_addr), offset: 8 })
    );
    assert!(matches!(&o[4], Op::St { space: Space::Shared, addr, a, .. }
        if *addr == Addr { base: Src::Imm(layout::SHARED_BASE + 16), offset: 0 } && a == &[Src::Imm(3)]));
    assert!(matches!(o[5], Op::Mov { a: Src::Imm(a), .. } if a == layout::SHARED_BASE));
    assert!(matches!(o[6], Op::Mov { ty: Ty::U32, a: Src::Imm(a), .. } if a == dyn_addr));
    assert!(
        matches!(&o[7], Op::Ld { space: Space::Const, addr, .. } if *addr == Addr { base: Src::Imm(16), offset: 0 })
    );
    assert!(matches!(&o[8], Op::Ld { space: Space::Local, addr: Addr { offset: -8, .. }, .. }));
    assert!(matches!(&o[9], Op::Ld { space: Space::Global, ty: Ty::U32, d, .. } if d.len() == 4));
    assert!(
        matches!(&o[10], Op::St { space: Space::Global, ty: Ty::B32, a, .. } if a.len() == 2 && a[1] == Src::Imm(5))
    );
    assert!(matches!(&o[11], Op::Ld { space: Space::Generic, ty: Ty::S8, .. }));
}

#[test]
fn calls_frames_and_depot() {
    let m = parse(
        ".visible .entry k()\n{\n\
         .local .align 4 .b8 __local_depot0[40];\n.reg .b64 %SP;\n.reg .b64 %SPL;\n.reg .b32 %r<4>;\n.reg .b64 %rd<4>;\n\
         mov.b64 %SPL, __local_depot0;\ncvta.local.u64 %SP, %SPL;\nst.local.b32 [%SPL+4], %r1;\n\
         { // callseq 0, 0\n.param .b64 param0;\n.param .b32 param1;\n.param .b32 retval0;\n\
         st.param.b64 [param0], %rd1;\nst.param.b32 [param1], %r1;\n\
         call.uni (retval0),\nf,\n(\nparam0,\nparam1\n);\nld.param.b32 %r2, [retval0];\n} // callseq 0\n\
         { .param .b32 param0;\nst.param.b32 [param0], %r2;\ncall.uni g, (param0);\n}\nret;\n}\n\
         .func (.param .b32 f_retval0) f(\n.param .b64 f_param_0,\n.param .b32 f_param_1\n)\n{\n\
         .reg .b32 %r<4>;\n.reg .b64 %rd<2>;\nld.param.b64 %rd1, [f_param_0];\nld.param.b32 %r1, [f_param_1];\n\
         st.param.b32 [f_retval0], %r1;\nret;\n}\n\
         .func g(.param .b32 g_param_0)\n{\n.local .align 8 .b8 __local_depot2[8];\n.reg .b64 %rd<2>;\n\
         mov.u64 %rd1, __local_depot2;\nld.local.b32 %rd1, [__local_depot2+4];\nret;\n}\n",
    );
    let (k, f, g) = (&m.functions[0], &m.functions[1], &m.functions[2]);
    assert_eq!((k.frame_params, k.local_bytes, k.call_param_bytes), (0, 48, 16));
    assert_eq!(k.frame_bytes(), 64);
    let fp: Vec<_> = f.params.iter().map(|p| (p.offset, p.size)).collect();
    assert_eq!(fp, [(0, 8), (8, 4)]);
    assert_eq!(f.rets.iter().map(|p| (p.offset, p.size)).collect::<Vec<_>>(), [(12, 4)]);
    assert_eq!((f.param_bytes, f.frame_params, f.local_bytes, f.call_param_bytes), (16, 16, 0, 0));
    assert_eq!((g.param_bytes, g.frame_params, g.local_bytes), (16, 16, 16));
    let o = ops(&m);
    let fb = |offset| Addr { base: Src::Sreg(Sreg::FrameBase), offset };
    assert!(matches!(o[0], Op::Add { ty: Ty::U64, a: Src::Sreg(Sreg::FrameBase), b: Src::Imm(0), .. }));
    assert!(matches!(o[1], Op::Cvta { space: Space::Local, to: false, .. }));
    assert!(matches!(&o[2], Op::St { space: Space::Local, addr: Addr { base: Src::Reg(_), offset: 4 }, .. }));
    // Call scratch after the 48-byte depot: param0 at 48, param1 at 56, retval0 at 60.
    assert!(matches!(&o[3], Op::St { space: Space::Local, ty: Ty::B64, addr, .. } if *addr == fb(48)));
    assert!(matches!(&o[4], Op::St { space: Space::Local, addr, .. } if *addr == fb(56)));
    assert!(matches!(&o[5], Op::Call { func: 1, args, rets } if args == &[48, 56] && rets == &[60]));
    assert!(matches!(&o[6], Op::Ld { space: Space::Local, addr, .. } if *addr == fb(60)));
    // The next call block reuses the scratch.
    assert!(matches!(&o[7], Op::St { addr, .. } if *addr == fb(48)));
    assert!(matches!(&o[8], Op::Call { func: 2, args, rets } if args == &[48] && rets.is_empty()));
    assert!(matches!(o[9], Op::Exit));
    // Inside f: its params and return value are frame slots.
    assert_eq!(f.start, 10);
    assert!(matches!(&o[10], Op::Ld { space: Space::Local, ty: Ty::B64, addr, .. } if *addr == fb(0)));
    assert!(matches!(&o[11], Op::Ld { space: Space::Local, addr, .. } if *addr == fb(8)));
    assert!(matches!(&o[12], Op::St { space: Space::Local, addr, .. } if *addr == fb(12)));
    assert!(matches!(o[13], Op::Ret));
    // g's depot sits after its 16 bytes of parameters.
    assert!(matches!(o[14], Op::Add { a: Src::Sreg(Sreg::FrameBase), b: Src::Imm(16), .. }));
    assert!(matches!(&o[15], Op::Ld { space: Space::Local, addr, .. } if *addr == fb(20)));
    assert!(matches!(o[16], Op::Ret));
    assert_eq!(m.code[5].line, 20, "a statement spanning lines has its first line");
}

#[test]
fn branches_tables_and_guards() {
    let m = kernel(
        "$L__BB0_1:\n\tsetp.lt.u32 %p1, %r1, 4;\n\t@%p1 bra $L__BB0_3;\n\t@!%p1 bra.uni $L__BB0_1;\n\
         $L_brx_0: .branchtargets\n\t\t$L__BB0_3,\n\t\t$L__BB0_1,\n\t\t$L__BB0_end;\n\
         brx.idx %r2, $L_brx_0;\n$L__BB0_3:\n\ttrap; exit;\n$L__BB0_end:\n\tret;",
    );
    let o = ops(&m);
    assert!(matches!(o[1], Op::Bra { target: 4 }));
    assert!(matches!(o[2], Op::Bra { target: 0 }));
    assert!(matches!(o[3], Op::BrxIdx { table: 0, index: Src::Reg(_) }));
    assert_eq!(m.branch_tables, vec![vec![4, 0, 6]]);
    let p1 = match o[0] {
        Op::Setp { p, ty: Ty::U32, cmp: Cmp::Lt, q: None, bool_op: None, .. } => p,
        ref x => panic!("{x:?}"),
    };
    assert_eq!(m.code[1].guard, Some((p1, false)));
    assert_eq!(m.code[2].guard, Some((p1, true)));
    assert_eq!(m.code[0].guard, None);
    assert!(matches!(o[4], Op::Trap) && matches!(o[5], Op::Exit) && matches!(o[6], Op::Exit));
    assert_eq!(m.code[4].line, m.code[5].line);
}

#[test]
fn multiline_wgmma_and_hopper_forms() {
    let regs: Vec<String> = (0..64).map(|i| format!("%r{}", 100 + i)).collect();
    let m = parse(&format!(
        ".extern .shared .align 1024 .b8 smem[];\n.visible .entry k(.param .align 8 .b8 k_param_0[8])\n.maxntid 384, 1, 1\n{{\n\
         .reg .pred %p<4>;\n.reg .b32 %r<200>;\n.reg .b64 %rd<8>;\n\
         mbarrier.init.shared::cta.b64 [%r1], %r2;\nfence.mbarrier_init.release.cluster;\nprefetch.tensormap [%rd1];\n\
         setmaxnreg.inc.sync.aligned.u32 232;\nsetmaxnreg.dec.sync.aligned.u32 40;\n\
         {{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%r3], %r4; selp.u32 %r5, 1, 0, p; }}\n\
         mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r3], %r6;\nmbarrier.arrive.shared::cta.b64 %rd2, [smem+8];\n\
         cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r7], [%rd3, {{%r8, %r9}}], [%r3];\n\
         wgmma.fence.sync.aligned;\n\
         {{ .reg .pred p; setp.ne.b32 p, %r10, 0;\nwgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16\n{{{}}},\n %rd4, %rd5, p, 1, -1, 0, 1; }}\n\
         {{ .reg .pred p; setp.ne.b32 p, %r10, 0;\nwgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3\n{{{}}},\n %rd4, %rd5, p, 1, 1; }}\n\
         wgmma.commit_group.sync.aligned;\nwgmma.wait_group.sync.aligned 0;\nmbarrier.test_wait.parity.shared.b64 %p1, [%r3], 1;\n\
         mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%r3], 64;\n}}\n",
        regs.join(", "),
        regs.join(",\n"),
    ));
    let o = ops(&m);
    let smem = layout::SHARED_BASE;
    assert_eq!(m.dynamic_smem_offset, 0);
    assert!(matches!(&o[0], Op::MbarInit { addr: Addr { base: Src::Reg(_), offset: 0 }, count: Src::Reg(_) }));
    assert!(matches!(o[1], Op::Fence) && matches!(o[2], Op::Nop));
    assert!(
        matches!(o[3], Op::SetMaxNReg { inc: true, n: 232 }) && matches!(o[4], Op::SetMaxNReg { inc: false, n: 40 })
    );
    let Op::MbarTryWait { p, test: false, parity: Src::Reg(_), acquire_cluster: false, .. } = o[5] else {
        panic!("{:?}", o[5])
    };
    assert!(matches!(o[6], Op::Selp { ty: Ty::U32, p: Src::Reg(q), a: Src::Imm(1), b: Src::Imm(0), .. } if q == p));
    assert!(matches!(&o[7], Op::MbarArrive { d: None, tx: Some(Src::Reg(_)), .. }));
    assert!(
        matches!(&o[8], Op::MbarArrive { d: Some(_), tx: None, addr, cluster: false, release_cluster: false, relaxed: false } if *addr == Addr { base: Src::Imm(smem), offset: 8 })
    );
    assert!(matches!(&o[9], Op::CpAsyncBulkTensor { coords, map: Src::Reg(_), .. } if coords.len() == 2));
    assert!(matches!(o[10], Op::WgmmaFence));
    let Op::Setp { p: scale, .. } = o[11] else { panic!() };
    match &o[12] {
        Op::Wgmma {
            m: 64,
            n: 128,
            k: 16,
            dty: Ty::F32,
            aty: Ty::Bf16,
            bty: Ty::Bf16,
            d,
            scale_d,
            scale_a: 1,
            scale_b: -1,
            tnsp_a: 0,
            tnsp_b: 1,
            ..
        } => {
            assert_eq!(d.len(), 64);
            assert_eq!(*scale_d, Src::Reg(scale));
            // %r100..%r163 are 64 distinct registers in order.
            assert!(d.windows(2).all(|w| w[0] != w[1]));
        }
        x => panic!("{x:?}"),
    }
    assert_eq!(m.code[12].line, m.code[11].line + 1, "wgmma's line is where its opcode is");
    let Op::Wgmma { d: d1, .. } = &o[12] else { panic!() };
    assert!(
        matches!(&o[14], Op::Wgmma { k: 32, aty: Ty::E4m3x2, bty: Ty::E4m3x2, d, tnsp_a: 0, tnsp_b: 0, .. } if d == d1)
    );
    assert!(matches!(o[15], Op::WgmmaCommit) && matches!(o[16], Op::WgmmaWait { n: 0 }));
    assert!(matches!(o[17], Op::MbarTryWait { test: true, parity: Src::Imm(1), .. }));
    assert!(matches!(o[18], Op::MbarExpectTx { tx: Src::Imm(64), .. }));
}

#[test]
fn arithmetic_and_conversion_forms() {
    let m = kernel(
        "add.rn.f32 %r1, %r2, %r3;\nadd.f32 %r1, %r2, %r3;\nmul.wide.u32 %rd1, %r1, 4;\nmad.lo.s64 %rd1, %rd2, %rd3, %rd1;\n\
         mad.wide.u32 %rd1, %r1, %r2, %rd2;\nfma.rn.f64 %rd1, %rd2, %rd3, %rd1;\ndiv.rn.f32 %r1, %r2, %r3;\ndiv.u64 %rd1, %rd2, %rd3;\n\
         rem.u32 %r1, %r2, 3;\nmin.f32 %r1, %r2, %r3;\nmax.u32 %r1, %r2, %r3;\nneg.f64 %rd1, %rd2;\nneg.s32 %r1, %r2;\nabs.f32 %r1, %r2;\n\
         rcp.rn.f32 %r1, %r2;\nsqrt.rn.f32 %r1, %r2;\nmul.hi.u64 %rd1, %rd2, %rd3;\nsub.s16 %rs1, %rs2, %rs3;\n\
         and.pred %p1, %p2, %p3;\nnot.pred %p1, %p2;\nshl.b64 %rd1, %rd2, 3;\nshr.s32 %r1, %r2, %r3;\nbfe.u32 %r1, %r2, 2, 1;\n\
         bfi.b32 %r1, %r2, %r3, 8, 4;\npopc.b32 %r1, %r2;\nclz.b64 %r1, %rd2;\nbrev.b32 %r1, %r2;\n\
         setp.ltu.f64 %p1|%p2, %rd1, %rd2;\nsetp.lt.and.f32 %p1, %r1, %r2, %p3;\nsetp.hs.u32 %p1, %r1, %r2;\n\
         cvt.rn.bf16x2.f32 %r1, %r2, %r3;\ncvt.rn.satfinite.e4m3x2.f32 %rs1, %r2, %r3;\ncvt.rzi.s64.f64 %rd1, %rd2;\n\
         cvt.f32.f16 %r1, %rs1;\ncvt.u16.u32 %rs1, %r1;\ncvt.s16.s8 %rs1, %rs2;\ncvt.rn.f32.u32 %r1, %r2;\ncvt.sat.f32.f32 %r1, %r2;\n\
         shfl.sync.bfly.b32 %r1|%p1, %r2, 16, 0x1f, -1;\nshfl.sync.idx.b32 %r1, %r2, %r3, 31, %r4;\nbar.sync 0;\nbarrier.sync.aligned 1, 64;\n\
         bar.warp.sync 0xffffffff;\natom.or.b32 %r1, [%rd1], 1;\natom.global.cas.b32 %r1, [%rd1], %r2, %r3;\nred.shared.add.u32 [%rd1], 1;\n\
         membar.gl;\nfence.acq_rel.gpu;\ncvta.to.global.u64 %rd1, %rd2;\ncvta.shared.u64 %rd1, %rd2;\ncvta.to.shared.u32 %r1, %rd2;",
    );
    let o = ops(&m);
    let mut i = 0;
    let mut next = || {
        i += 1;
        o[i - 1].clone()
    };
    assert!(matches!(next(), Op::FAdd { ty: Ty::F32, rnd: Rnd::Rn, .. }));
    assert!(matches!(next(), Op::FAdd { rnd: Rnd::None, .. }));
    assert!(matches!(next(), Op::MulInt { ty: Ty::U32, mode: MulMode::Wide, b: Src::Imm(4), .. }));
    assert!(matches!(next(), Op::MadInt { ty: Ty::S64, mode: MulMode::Lo, .. }));
    assert!(matches!(next(), Op::MadInt { ty: Ty::U32, mode: MulMode::Wide, .. }));
    assert!(matches!(next(), Op::Fma { ty: Ty::F64, rnd: Rnd::Rn, .. }));
    assert!(matches!(next(), Op::FDiv { ty: Ty::F32, rnd: Rnd::Rn, .. }));
    assert!(matches!(next(), Op::Div { ty: Ty::U64, .. }));
    assert!(matches!(next(), Op::Rem { ty: Ty::U32, b: Src::Imm(3), .. }));
    assert!(matches!(next(), Op::FMin { ty: Ty::F32, .. }));
    assert!(matches!(next(), Op::Max { ty: Ty::U32, .. }));
    assert!(matches!(next(), Op::FNeg { ty: Ty::F64, .. }));
    assert!(matches!(next(), Op::Neg { ty: Ty::S32, .. }));
    assert!(matches!(next(), Op::FAbs { ty: Ty::F32, .. }));
    assert!(matches!(next(), Op::Rcp { ty: Ty::F32, rnd: Rnd::Rn, .. }));
    assert!(matches!(next(), Op::Sqrt { ty: Ty::F32, rnd: Rnd::Rn, .. }));
    assert!(matches!(next(), Op::MulInt { ty: Ty::U64, mode: MulMode::Hi, .. }));
    assert!(matches!(next(), Op::Sub { ty: Ty::S16, .. }));
    assert!(matches!(next(), Op::And { ty: Ty::Pred, .. }));
    assert!(matches!(next(), Op::Not { ty: Ty::Pred, .. }));
    assert!(matches!(next(), Op::Shl { ty: Ty::B64, b: Src::Imm(3), .. }));
    assert!(matches!(next(), Op::Shr { ty: Ty::S32, .. }));
    assert!(matches!(next(), Op::Bfe { ty: Ty::U32, b: Src::Imm(2), c: Src::Imm(1), .. }));
    assert!(matches!(next(), Op::Bfi { ty: Ty::B32, pos: Src::Imm(8), len: Src::Imm(4), .. }));
    assert!(matches!(next(), Op::Popc { ty: Ty::B32, .. }));
    assert!(matches!(next(), Op::Clz { ty: Ty::B64, .. }));
    assert!(matches!(next(), Op::Brev { ty: Ty::B32, .. }));
    assert!(matches!(next(), Op::Setp { ty: Ty::F64, cmp: Cmp::Ltu, q: Some(_), bool_op: None, .. }));
    assert!(matches!(next(), Op::Setp { ty: Ty::F32, cmp: Cmp::Lt, bool_op: Some((BoolOp::And, Src::Reg(_))), .. }));
    assert!(matches!(next(), Op::Setp { ty: Ty::U32, cmp: Cmp::Ge, .. }));
    let (r2, r3) = match next() {
        Op::Cvt { dty: Ty::Bf16x2, sty: Ty::F32, rnd: Rnd::Rn, b: Some(Src::Reg(b)), a: Src::Reg(a), .. } => (a, b),
        x => panic!("{x:?}"),
    };
    assert_ne!(r2, r3);
    assert!(matches!(next(), Op::Cvt { dty: Ty::E4m3x2, sty: Ty::F32, satfinite: true, sat: false, b: Some(_), .. }));
    assert!(matches!(next(), Op::Cvt { dty: Ty::S64, sty: Ty::F64, rnd: Rnd::Rzi, b: None, .. }));
    assert!(matches!(next(), Op::Cvt { dty: Ty::F32, sty: Ty::F16, rnd: Rnd::None, .. }));
    assert!(matches!(next(), Op::Cvt { dty: Ty::U16, sty: Ty::U32, .. }));
    assert!(matches!(next(), Op::Cvt { dty: Ty::S16, sty: Ty::S8, .. }));
    assert!(matches!(next(), Op::Cvt { dty: Ty::F32, sty: Ty::U32, rnd: Rnd::Rn, .. }));
    assert!(matches!(next(), Op::Cvt { dty: Ty::F32, sty: Ty::F32, sat: true, .. }));
    assert!(matches!(
        next(),
        Op::Shfl {
            mode: ShflMode::Bfly,
            p: Some(_),
            b: Src::Imm(16),
            c: Src::Imm(31),
            mask: Src::Imm(0xffff_ffff),
            ..
        }
    ));
    assert!(matches!(next(), Op::Shfl { mode: ShflMode::Idx, p: None, mask: Src::Reg(_), .. }));
    assert!(matches!(next(), Op::BarSync { id: Src::Imm(0), count: None }));
    assert!(matches!(next(), Op::BarSync { id: Src::Imm(1), count: Some(Src::Imm(64)) }));
    assert!(matches!(next(), Op::BarWarpSync { mask: Src::Imm(0xffff_ffff) }));
    assert!(matches!(
        next(),
        Op::Atom { space: Space::Generic, op: AtomOp::Or, ty: Ty::B32, d: Some(_), a: Src::Imm(1), b: None, .. }
    ));
    assert!(matches!(next(), Op::Atom { space: Space::Global, op: AtomOp::Cas, b: Some(_), .. }));
    assert!(matches!(next(), Op::Atom { space: Space::Shared, op: AtomOp::Add, d: None, .. }));
    assert!(matches!(next(), Op::Fence));
    assert!(matches!(next(), Op::Fence));
    assert!(matches!(next(), Op::Cvta { space: Space::Global, to: true, .. }));
    assert!(matches!(next(), Op::Cvta { space: Space::Shared, to: false, .. }));
    assert!(matches!(next(), Op::Cvta { space: Space::Shared, to: true, .. }));
    assert_eq!(i, o.len());
}

#[test]
fn mov_pack_and_unpack() {
    let m = kernel(
        "mov.b64 {_, %r1}, %rd1;\n{ .reg .b16 tmp; mov.b32 {tmp, %rs1}, %r2; }\nmov.b64 %rd2, {%r3, %r4};\nmov.u32 %r5, %laneid;",
    );
    let o = ops(&m);
    assert!(matches!(o[0], Op::Shr { ty: Ty::B64, b: Src::Imm(32), .. }));
    assert!(matches!(o[1], Op::And { ty: Ty::B32, b: Src::Imm(0xffff), .. }));
    assert!(matches!(o[2], Op::Shr { ty: Ty::B32, b: Src::Imm(16), .. }));
    // Pack: d = hi; d <<= 32; d |= lo.
    let Op::Mov { ty: Ty::B64, d, a: Src::Reg(hi) } = o[3] else { panic!("{:?}", o[3]) };
    assert!(matches!(o[4], Op::Shl { d: x, a: Src::Reg(y), b: Src::Imm(32), .. } if x == d && y == d));
    assert!(matches!(o[5], Op::Or { d: x, b: Src::Reg(lo), .. } if x == d && lo != hi));
    assert!(matches!(o[6], Op::Mov { a: Src::Sreg(Sreg::LaneId), .. }));
}

#[test]
fn comments_and_line_numbers() {
    let m = parse(
        "/* a block\n comment; { } */\n.visible .entry k() // trailing\n{\n.reg .b32 %r<2>; /* inline */ mov.b32 %r1, 1; // c; d\n\n\
         mov.b32 /* mid */ %r0,\n   2;\n}\n",
    );
    assert_eq!(m.functions[0].line, 6);
    assert_eq!(m.code[0].line, 8);
    assert_eq!(m.code[1].line, 10);
    assert_eq!(m.lines.len(), 12);
}

#[test]
fn errors_name_the_line_and_form() {
    let e = kernel_err("mov.b32 %r1, 1;\nfoo.bar.b32 %r1, %r2;");
    assert!(e.contains("line 10") && e.contains("unsupported instruction form 'foo.bar.b32'"), "{e}");
    let e = kernel_err("add.sat.s32 %r1, %r2, %r3;");
    assert!(e.contains("line 9") && e.contains("'add.sat.s32'"), "{e}");
    let e = kernel_err("rcp.approx.f32 %r1, %r2;");
    assert!(e.contains("'rcp.approx.f32'"), "{e}");
    let e = kernel_err("mov.b32 %r9, 1;");
    assert!(e.contains("line 9") && e.contains("%r9"), "{e}");
    let e = kernel_err("bra $L__nowhere;");
    assert!(e.contains("line 9") && e.contains("$L__nowhere"), "{e}");
    let e = kernel_err("ld.global.b32 %r1, [missing+4];");
    assert!(e.contains("undefined symbol 'missing'"), "{e}");
    let e = kernel_err(".maxclusterrank 2;");
    assert!(e.contains("line 9") && e.contains("unsupported directive"), "{e}");
    let e = kernel_err("{ .param .b32 param0;\ncall.uni nobody, (param0);\n}");
    assert!(e.contains("line 10") && e.contains("undefined function 'nobody'"), "{e}");
    let e = parse_err(
        ".visible .entry k()\n{\n.reg .b32 %r<2>;\n{ .param .b64 param0;\ncall.uni f, (param0);\n}\nret;\n}\n.func f(.param .b32 a)\n{\nret;\n}\n",
    );
    assert!(e.contains("line 8") && e.contains("does not match"), "{e}");
    let e = parse_err(".global .b32 g;\n");
    assert!(e.contains("line 4") && e.contains(".global"), "{e}");
    let e = kernel_err("mov.b32 %r1, 1");
    assert!(e.contains("line 9") && e.contains("unbalanced"), "{e}");
}

#[test]
fn signed_loads_extend_to_the_register_width() {
    let m = kernel(
        "ld.s8 %rs1, [%rd1];\nld.s32 %rd2, [%rd1];\nld.s32 %r1, [%rd1];\nld.u8 %r2, [%rd1];\n\
         ld.global.v2.s16 {%r3, %r4}, [%rd1];",
    );
    let o = ops(&m);
    let Op::Ld { ty: Ty::S8, d, .. } = &o[0] else { panic!("{:?}", o[0]) };
    assert!(matches!(o[1], Op::Cvt { dty: Ty::S16, sty: Ty::S8, d: x, a: Src::Reg(y), .. } if x == d[0] && y == d[0]));
    let Op::Ld { ty: Ty::S32, d, .. } = &o[2] else { panic!("{:?}", o[2]) };
    assert!(matches!(o[3], Op::Cvt { dty: Ty::S64, sty: Ty::S32, d: x, .. } if x == d[0]));
    assert!(matches!(o[4], Op::Ld { ty: Ty::S32, .. }), "same width: no extension");
    assert!(matches!(o[5], Op::Ld { ty: Ty::U8, .. }), "unsigned: the load zero-extends");
    let Op::Ld { ty: Ty::S16, d, .. } = &o[6] else { panic!("{:?}", o[6]) };
    assert!(matches!(o[7], Op::Cvt { dty: Ty::S32, sty: Ty::S16, d: x, .. } if x == d[0]));
    assert!(matches!(o[8], Op::Cvt { dty: Ty::S32, sty: Ty::S16, d: x, .. } if x == d[1]));
    assert_eq!(o.len(), 9);
    assert!(m.code[7].line == m.code[6].line);
}

#[test]
fn cluster_forms() {
    let m = parse(
        ".extern .shared .align 1024 .b8 smem[];\n.visible .entry k(.param .align 8 .b8 k_param_0[8])\n.maxntid 384, 1, 1\n.reqnctapercluster 2, 1, 1\n{\n\
         .reg .pred %p<4>;\n.reg .b16 %rs<4>;\n.reg .b32 %r<20>;\n.reg .b64 %rd<8>;\n\
         mov.u32 %r1, %cluster_ctarank;\nmov.u32 %r2, %cluster_nctarank;\nmov.u32 %r3, %clusterid.y;\n\
         mov.u32 %r4, %cluster_ctaid.x;\nmov.u32 %r5, %is_explicit_cluster;\n\
         mapa.shared::cluster.u32 %r6, %r7, %r1;\nmapa.shared::cluster.u64 %rd1, %rd2, 1;\n\
         mbarrier.arrive.release.cluster.shared::cluster.b64 _, [%r6];\n\
         cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster [%r8], [%rd3, {%r9, %r10}], [%r11], %rs1;\n\
         barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\nbarrier.cluster.arrive.relaxed;\nbarrier.cluster.wait;\n\
         fence.acq_rel.cluster;\n         ld.shared::cluster.v4.f32 {%r12, %r13, %r14, %r15}, [%r6];\n         mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 %p1, [%r7], %r8;\n         mbarrier.test_wait.parity.relaxed.cluster.shared::cta.b64 %p1, [%r7], %r8;\n         mbarrier.arrive.release.cta.shared::cluster.b64 _, [%r6];\n         mbarrier.arrive.cluster.shared::cta.b64 %rd4, [%r7];\n}\n",
    );
    assert_eq!(m.functions[0].reqnctapercluster, Some([2, 1, 1]));
    let o = ops(&m);
    assert!(matches!(o[0], Op::Mov { a: Src::Sreg(Sreg::ClusterCtarank), .. }), "{:?}", o[0]);
    assert!(matches!(o[1], Op::Mov { a: Src::Sreg(Sreg::ClusterNctarank), .. }));
    assert!(matches!(o[2], Op::Mov { a: Src::Sreg(Sreg::Clusterid(1)), .. }));
    assert!(matches!(o[3], Op::Mov { a: Src::Sreg(Sreg::ClusterCtaid(0)), .. }));
    assert!(matches!(o[4], Op::Mov { a: Src::Sreg(Sreg::IsExplicitCluster), .. }));
    assert!(matches!(o[5], Op::Mapa { a: Src::Reg(_), rank: Src::Reg(_), .. }));
    assert!(matches!(o[6], Op::Mapa { rank: Src::Imm(1), .. }));
    assert!(matches!(&o[7], Op::MbarArrive { d: None, tx: None, cluster: true, release_cluster: true, .. }));
    assert!(matches!(&o[8], Op::CpAsyncBulkTensor { multicast: Some(Src::Reg(_)), coords, .. } if coords.len() == 2));
    assert!(matches!(o[9], Op::ClusterArrive { relaxed: false }) && matches!(o[10], Op::ClusterWait));
    assert!(matches!(o[11], Op::ClusterArrive { relaxed: true }) && matches!(o[12], Op::ClusterWait));
    assert!(matches!(o[13], Op::Fence));
    // Distributed shared memory: a vector load through a `.shared::cluster` address.
    assert!(matches!(&o[14], Op::Ld { space: Space::SharedCluster, ty: Ty::F32, d, .. } if d.len() == 4));
    // Cluster scope orders across CTAs only with acquire / release semantics (the defaults).
    assert!(matches!(o[15], Op::MbarTryWait { acquire_cluster: true, test: false, relaxed: false, .. }));
    // `.relaxed` orders nothing, at either scope
    assert!(matches!(o[16], Op::MbarTryWait { acquire_cluster: false, test: true, relaxed: true, .. }));
    assert!(matches!(o[17], Op::MbarArrive { cluster: true, release_cluster: false, relaxed: false, .. }));
    assert!(matches!(o[18], Op::MbarArrive { cluster: false, release_cluster: true, d: Some(_), relaxed: false, .. }));
    // A remote arrive returns no state.
    let e = kernel_err("mbarrier.arrive.release.cluster.shared::cluster.b64 %rd1, [%r1];");
    assert!(e.contains("sink"), "{e}");
}
