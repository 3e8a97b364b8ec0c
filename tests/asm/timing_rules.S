/* Hand-written Thumb-2 sequences for tests/test_timing_rules.py: one function per timing rule of
 * REFERENCE.md section 2, each paired with a baseline identical except for the sequence under test,
 * so that the call/return overhead cancels in the cycle delta.
 *
 * Calling convention used by the tests (no C prototypes, so every argument is a register):
 *   r0 = a 256-byte SRAM buffer; word 0 holds the buffer's own address (for address-dependent loads),
 *        word 2 (offset 8) holds bx_target | 1 (for LDR PC); the test rewrites it before every call
 *   r1 = per-test selector or iteration count (0 unless the test says otherwise)
 *   r2 = a code address | 1 for the BX/BLX/MOV PC cases, a flash address for fl_table (0 otherwise)
 *   r3 = 16, the index register of register-offset loads and stores
 * Most cases are `nop; <sequence>; nop; bx lr` against base2 = `nop; nop; bx lr`: the nops isolate the
 * sequence from the instructions around it (load pipelining, AGU interlock and IT folding look at
 * the previous instruction).
 */
    .syntax unified
    .thumb
    .text

.macro FUNC name
    .global \name
    .type \name, %function
    .thumb_func
\name:
.endm

.macro ENDF name
    .size \name, . - \name
.endm

/* nop; <one instruction>; nop; bx lr */
.macro CASE name, insn:vararg
    .balign 4
FUNC \name
    nop
    \insn
    nop
    bx lr
ENDF \name
.endm

/* ---------------------------------------------------------------- baselines */
    .balign 4
FUNC base2
    nop
    nop
    bx lr
ENDF base2

    .balign 4
FUNC base3
    nop
    nop
    nop
    bx lr
ENDF base3

/* ---------------------------------------------------------------- data processing: 1 */
CASE dp_mov,    mov r1, r2
CASE dp_movs16, movs r1, #200
CASE dp_movw,   movw r1, #0x1234
CASE dp_movt,   movt r1, #0x1234
CASE dp_add,    add r1, r2, r12
CASE dp_adds16, adds r1, r2, r3
CASE dp_addsh,  add r1, r2, r12, lsl #2
CASE dp_sub,    sub r1, r2, #7
CASE dp_adc,    adc r1, r2, r12
CASE dp_sbc,    sbc r1, r2, r12
CASE dp_rsb,    rsb r1, r2, #0
CASE dp_cmp,    cmp r1, r2
CASE dp_cmn,    cmn r1, r2
CASE dp_and,    and r1, r2, r12
CASE dp_orr,    orr r1, r2, r12
CASE dp_eor,    eor r1, r2, r12
CASE dp_bic,    bic r1, r2, r12
CASE dp_orn,    orn r1, r2, r12
CASE dp_mvn,    mvn r1, r2
CASE dp_tst,    tst r1, r2
CASE dp_teq,    teq r1, r2
CASE dp_lsl,    lsl r1, r2, #3
CASE dp_asr,    asr r1, r2, r12
CASE dp_ror,    ror r1, r2, #5
CASE dp_clz,    clz r1, r2
CASE dp_rbit,   rbit r1, r2
CASE dp_rev,    rev r1, r2
CASE dp_rev16,  rev16 r1, r2
CASE dp_sxtb,   sxtb r1, r2
CASE dp_uxth,   uxth r1, r2
CASE dp_sxtah,  sxtah r1, r2, r12
CASE dp_bfi,    bfi r1, r2, #4, #8
CASE dp_bfc,    bfc r1, #4, #8
CASE dp_ubfx,   ubfx r1, r2, #4, #8
CASE dp_sbfx,   sbfx r1, r2, #4, #8
CASE dp_ssat,   ssat r1, #8, r2
CASE dp_usat,   usat r1, #8, r2
CASE dp_nop,    nop

/* ---------------------------------------------------------------- multiply: 1 */
CASE mul_mul,   mul r1, r2, r12
CASE mul_mla,   mla r1, r2, r12, r3
CASE mul_mls,   mls r1, r2, r12, r3
CASE mul_smull, smull r1, r2, r12, r3
CASE mul_umull, umull r1, r2, r12, r3
CASE mul_smlal, smlal r1, r2, r12, r3
CASE mul_umlal, umlal r1, r2, r12, r3

/* ---------------------------------------------------------------- DSP / SIMD: 1 */
CASE dsp_smlad,  smlad r1, r2, r12, r3
CASE dsp_smuad,  smuad r1, r2, r12
CASE dsp_smlabb, smlabb r1, r2, r12, r3
CASE dsp_qadd,   qadd r1, r2, r12
CASE dsp_qsub,   qsub r1, r2, r12
CASE dsp_sadd16, sadd16 r1, r2, r12
CASE dsp_uadd8,  uadd8 r1, r2, r12
CASE dsp_sel,    sel r1, r2, r12
CASE dsp_usad8,  usad8 r1, r2, r12
CASE dsp_pkhbt,  pkhbt r1, r2, r12, lsl #8

/* ---------------------------------------------------------------- divide: DIVIDE_CYCLES */
CASE div_sdiv, sdiv r1, r3, r3
CASE div_udiv, udiv r1, r3, r3

/* ---------------------------------------------------------------- single loads: 2 (any addressing) */
CASE ld_imm,      ldr r1, [r0, #4]
CASE ld_reg,      ldr r1, [r0, r3]
CASE ld_regshift, ldr r1, [r0, r3, lsl #2]
CASE ld_b,        ldrb r1, [r0, #1]
CASE ld_h,        ldrh r1, [r0, #2]
CASE ld_sb,       ldrsb r1, [r0, #3]
CASE ld_sh,       ldrsh r1, [r0, r3]
CASE ld_post,     ldr r1, [r0], #4
CASE ld_pre,      ldr r1, [r0, #4]!
CASE ld_wide,     ldr.w r1, [r0, #124]

    .balign 4
FUNC ld_lit                         /* PC-relative literal (flash, 0 wait states at 20 MHz) */
    nop
    ldr r1, 1f
    nop
    bx lr
    .balign 4
1:  .word 0x12345678
ENDF ld_lit

    .balign 4
FUNC fp_vldr_lit                    /* VLDR from a literal pool */
    nop
    vldr s0, 1f
    nop
    bx lr
    .balign 4
1:  .word 0x3f800000
ENDF fp_vldr_lit

/* ---------------------------------------------------------------- load/store pipelining */
    .balign 4
FUNC pl_ldr_ldr                     /* LDR;LDR, independent addresses: 3 */
    nop
    ldr r1, [r0]
    ldr r2, [r0, #4]
    nop
    bx lr
ENDF pl_ldr_ldr

    .balign 4
FUNC pl_ldr_ldr_ldr                 /* LDR;LDR;LDR (TRM example shape): 4 */
    nop
    ldr r1, [r0, r3]
    ldr r2, [r0]
    ldr r12, [r0, #4]
    nop
    bx lr
ENDF pl_ldr_ldr_ldr

    .balign 4
FUNC pl_ldr_str_imm                 /* TRM: LDR R0,[R1,R2]; STR R0,[R3,#20]: 3 */
    nop
    ldr r1, [r0, r3]
    str r1, [r0, #20]
    nop
    bx lr
ENDF pl_ldr_str_imm

    .balign 4
FUNC pl_ldr_str_reg                 /* TRM: LDR R0,[R1,R2]; STR R1,[R3,R2]: 3 */
    nop
    ldr r1, [r0, r3]
    str r2, [r0, r3]
    nop
    bx lr
ENDF pl_ldr_str_reg

    .balign 4
FUNC pl_ldr_dep                     /* second address is the first load's result: no pipelining + AGU */
    nop
    ldr r1, [r0]
    ldr r2, [r1]
    nop
    bx lr
ENDF pl_ldr_dep

    .balign 4
FUNC pl_str_reg_ldr                 /* nothing pipelines after a register-offset STR: 2 + 2 */
    nop
    str r1, [r0, r3]
    ldr r2, [r0]
    nop
    bx lr
ENDF pl_str_reg_ldr

    .balign 4
FUNC pl_str_str                     /* two immediate-offset stores: 1 + 1 */
    nop
    str r1, [r0, #20]
    str r2, [r0, #24]
    nop
    bx lr
ENDF pl_str_str

    .balign 4
FUNC pl_ldr_ldrd                    /* LDRD does not pipeline behind a load: 2 + 3 */
    nop
    ldr r1, [r0]
    ldrd r2, r12, [r0, #8]
    nop
    bx lr
ENDF pl_ldr_ldrd

    .balign 4
FUNC pl_ldrd_ldr                    /* nor does a load behind LDRD: 3 + 2 */
    nop
    ldrd r2, r12, [r0, #8]
    ldr r1, [r0]
    nop
    bx lr
ENDF pl_ldrd_ldr

    .balign 4
FUNC pl_ldr_ldm                     /* nor LDM behind a load: 2 + (1 + 3) */
    nop
    ldr r1, [r0, #4]
    ldm r0, {r2, r3, r12}
    nop
    bx lr
ENDF pl_ldr_ldm

/* ---------------------------------------------------------------- AGU interlock: +1 */
    .balign 4
FUNC agu_ldr_base                   /* base register written by the ALU instruction just before */
    nop
    adds r1, r0, #0
    ldr r2, [r1]
    nop
    bx lr
ENDF agu_ldr_base

    .balign 4
FUNC agu_ldr_base_ref
    nop
    adds r1, r0, #0
    ldr r2, [r0]
    nop
    bx lr
ENDF agu_ldr_base_ref

    .balign 4
FUNC agu_ldr_index                  /* index register written just before */
    nop
    movs r1, #16
    ldr r2, [r0, r1]
    nop
    bx lr
ENDF agu_ldr_index

    .balign 4
FUNC agu_ldr_index_ref
    nop
    movs r1, #16
    ldr r2, [r0, r3]
    nop
    bx lr
ENDF agu_ldr_index_ref

    .balign 4
FUNC agu_str_base                   /* store whose base was written just before */
    nop
    adds r1, r0, #0
    str r2, [r1, #20]
    nop
    bx lr
ENDF agu_str_base

    .balign 4
FUNC agu_str_base_ref
    nop
    adds r1, r0, #0
    str r2, [r0, #20]
    nop
    bx lr
ENDF agu_str_base_ref

    .balign 4
FUNC agu_str_data                   /* only the address matters: the stored register may be fresh */
    nop
    movs r2, #1
    str r2, [r0, #20]
    nop
    bx lr
ENDF agu_str_data

    .balign 4
FUNC agu_str_data_ref
    nop
    movs r2, #1
    str r1, [r0, #20]
    nop
    bx lr
ENDF agu_str_data_ref

/* ---------------------------------------------------------------- single stores */
CASE st_imm,   str r1, [r0, #20]
CASE st_b_imm, strb r1, [r0, #21]
CASE st_h_imm, strh r1, [r0, #22]
CASE st_reg,   str r1, [r0, r3]
CASE st_b_reg, strb r1, [r0, r3]
CASE st_h_reg, strh r1, [r0, r3]

/* ---------------------------------------------------------------- LDRD/STRD: 3; LDM/STM: 1+N */
CASE ldrd_imm, ldrd r1, r2, [r0, #8]
CASE strd_imm, strd r1, r2, [r0, #24]
CASE ldm_2wb,  ldmia r0!, {r1, r2}
CASE ldm_3,    ldm r0, {r1, r2, r12}
CASE stm_4wb,  stmia r0!, {r1, r2, r3, r12}
CASE stm_8,    stm r0, {r1, r2, r3, r4, r5, r6, r7, r8}

    .balign 4
FUNC pp_1                           /* PUSH;POP of 1 register: 2 + 2 */
    nop
    push {r4}
    pop {r4}
    nop
    bx lr
ENDF pp_1

    .balign 4
FUNC pp_2                           /* 3 + 3 */
    nop
    push {r4, lr}
    pop {r4, lr}
    nop
    bx lr
ENDF pp_2

    .balign 4
FUNC pp_8                           /* 9 + 9 */
    nop
    push {r4, r5, r6, r7, r8, r9, r10, r11}
    pop {r4, r5, r6, r7, r8, r9, r10, r11}
    nop
    bx lr
ENDF pp_8

/* ---------------------------------------------------------------- branches */
    .balign 4
FUNC leaf
    bx lr
ENDF leaf

    .balign 4
FUNC bx_target                      /* reached by BX / MOV PC / LDR PC from the br_* cases below */
    nop
    bx lr
ENDF bx_target

    .balign 4
FUNC br_b                           /* unconditional B: 1+P */
    nop
    b.n 1f
    nop                             /* skipped */
1:  nop
    bx lr
ENDF br_b

    .balign 4
FUNC br_bw                          /* B.W (32-bit encoding): 1+P */
    nop
    b.w 1f
    nop                             /* skipped */
1:  nop
    bx lr
ENDF br_bw

    .balign 4
FUNC br_bcond                       /* r1 != 0: taken, 1+P against base2; r1 == 0: 1 against base3 */
    cmp r1, #0
    bne 1f
    nop                             /* skipped when taken */
1:  nop
    bx lr
ENDF br_bcond

    .balign 4
FUNC br_cbz                         /* r1 == 0: taken */
    nop
    cbz r1, 1f
    nop                             /* skipped when taken */
1:  nop
    bx lr
ENDF br_cbz

    .balign 4
FUNC br_cbnz                        /* r1 != 0: taken */
    nop
    cbnz r1, 1f
    nop                             /* skipped when taken */
1:  nop
    bx lr
ENDF br_cbnz

    .balign 4
FUNC br_bx                          /* BX r2 (r2 = bx_target | 1): 1+P, then bx_target's nop; bx lr */
    nop
    bx r2
ENDF br_bx

    .balign 4
FUNC br_movpc                       /* data processing writing PC: 1+P */
    nop
    mov pc, r2
ENDF br_movpc

    .balign 4
FUNC br_ldrpc                       /* LDR PC (buffer word 2 = bx_target | 1): 2+P */
    nop
    ldr pc, [r0, #8]
ENDF br_ldrpc

    .balign 4
FUNC br_bl                          /* BL leaf (+ leaf's BX LR) */
    push {r4, lr}
    bl leaf
    pop {r4, pc}
ENDF br_bl

    .balign 4
FUNC br_blx                         /* BLX r2 (r2 = leaf | 1) (+ leaf's BX LR) */
    push {r4, lr}
    blx r2
    pop {r4, pc}
ENDF br_blx

    .balign 4
FUNC br_popc                        /* PUSH; POP with PC: 1+N+P (also the baseline of br_bl / br_blx) */
    push {r4, lr}
    pop {r4, pc}
ENDF br_popc

    .balign 4
FUNC br_popc_ref                    /* PUSH; POP without PC; BX LR */
    push {r4, lr}
    pop {r4, lr}
    bx lr
ENDF br_popc_ref

    .balign 4
FUNC br_bxlr_lr_written             /* LR written just before BX LR: its target is issued from execute */
    mov r12, lr
    mov lr, r12
    bx lr
ENDF br_bxlr_lr_written

    .balign 4
FUNC br_bxlr_other_written          /* the same with another register written: issued from decode */
    mov r12, lr
    mov r1, r12
    bx lr
ENDF br_bxlr_other_written

    .balign 4
FUNC br_tbb                         /* r1 = 0: TBB, 2+P */
    nop
    tbb [pc, r1]
1:  .byte (2f - 1b) / 2
    .byte 0
2:  nop
    bx lr
ENDF br_tbb

    .balign 4
FUNC br_tbh                         /* r1 = 0: TBH, 2+P */
    nop
    tbh [pc, r1, lsl #1]
1:  .hword (2f - 1b) / 2
2:  nop
    bx lr
ENDF br_tbh

    .balign 4
FUNC br_loop                        /* r1 = iterations >= 1: a counted loop, taken r1-1 times */
1:  subs r1, r1, #1
    bne 1b
    bx lr
ENDF br_loop

/* taken branch target placement: a 32-bit instruction at 2 mod 4 costs UNALIGNED_TARGET more */
    .balign 4
FUNC al_w0                          /* 32-bit target at 0 mod 4 */
    b.n 1f
    nop                             /* skipped */
1:  add.w r1, r1, #1
    bx lr
ENDF al_w0

    .balign 4
FUNC al_w2                          /* 32-bit target at 2 mod 4 */
    b.n 1f
    .balign 4
    nop                             /* skipped */
1:  add.w r1, r1, #1
    bx lr
ENDF al_w2

    .balign 4
FUNC al_n0                          /* 16-bit target at 0 mod 4 */
    b.n 1f
    nop                             /* skipped */
1:  adds r1, r1, #1
    bx lr
ENDF al_n0

    .balign 4
FUNC al_n2                          /* 16-bit target at 2 mod 4 */
    b.n 1f
    .balign 4
    nop                             /* skipped */
1:  adds r1, r1, #1
    bx lr
ENDF al_n2

/* ---------------------------------------------------------------- IT folding */
    .balign 4
FUNC it_after16                     /* IT after a 16-bit instruction: folded, 0 */
    nop
    adds r1, r1, #0
    it eq
    addeq r2, #1
    nop
    bx lr
ENDF it_after16

    .balign 4
FUNC it_after16_ref
    nop
    adds r1, r1, #0
    adds r2, #1
    nop
    bx lr
ENDF it_after16_ref

    .balign 4
FUNC it_after32                     /* IT after a 32-bit instruction: 1 */
    nop
    adds.w r1, r1, #0
    it eq
    addeq r2, #1
    nop
    bx lr
ENDF it_after32

    .balign 4
FUNC it_after32_ref
    nop
    adds.w r1, r1, #0
    adds r2, #1
    nop
    bx lr
ENDF it_after32_ref

/* ---------------------------------------------------------------- FPU */
CASE fp_vadd,   vadd.f32 s0, s1, s2
CASE fp_vsub,   vsub.f32 s0, s1, s2
CASE fp_vmul,   vmul.f32 s0, s1, s2
CASE fp_vnmul,  vnmul.f32 s0, s1, s2
CASE fp_vabs,   vabs.f32 s0, s1
CASE fp_vneg,   vneg.f32 s0, s1
CASE fp_vcmp,   vcmp.f32 s0, s1
CASE fp_vcmpe0, vcmpe.f32 s0, #0
CASE fp_vcvt_si, vcvt.s32.f32 s0, s1
CASE fp_vcvt_fs, vcvt.f32.s32 s0, s1
CASE fp_vmla,   vmla.f32 s0, s1, s2
CASE fp_vmls,   vmls.f32 s0, s1, s2
CASE fp_vnmla,  vnmla.f32 s0, s1, s2
CASE fp_vnmls,  vnmls.f32 s0, s1, s2
CASE fp_vfma,   vfma.f32 s0, s1, s2
CASE fp_vfms,   vfms.f32 s0, s1, s2
CASE fp_vfnma,  vfnma.f32 s0, s1, s2
CASE fp_vfnms,  vfnms.f32 s0, s1, s2
CASE fp_vdiv,   vdiv.f32 s0, s1, s2
CASE fp_vsqrt,  vsqrt.f32 s0, s1
CASE fp_vldr,   vldr s0, [r0, #4]
CASE fp_vstr,   vstr s0, [r0, #20]
CASE fp_vldm4,  vldmia r0, {s0-s3}
CASE fp_vstm4,  vstmia r0, {s0-s3}
CASE fp_vmov_rs,  vmov r1, s0
CASE fp_vmov_sr,  vmov s0, r1
CASE fp_vmov_rrss, vmov r1, r2, s0, s1
CASE fp_vmov_ssrr, vmov s0, s1, r1, r2
CASE fp_vmov_imm, vmov.f32 s0, #1.0
CASE fp_vmov_ss,  vmov.f32 s0, s1
CASE fp_vmrs,     vmrs r1, fpscr
CASE fp_vmrs_apsr, vmrs APSR_nzcv, fpscr
CASE fp_vmsr,     vmsr fpscr, r1

    .balign 4
FUNC fp_vpp_1                       /* VPUSH;VPOP of 1 single: 2 + 2 */
    nop
    vpush {s16}
    vpop {s16}
    nop
    bx lr
ENDF fp_vpp_1

    .balign 4
FUNC fp_vpp_4                       /* 5 + 5 */
    nop
    vpush {s16-s19}
    vpop {s16-s19}
    nop
    bx lr
ENDF fp_vpp_4

    .balign 4
FUNC fp_vpp_d2                      /* two doubles = four singles: 5 + 5 */
    nop
    vpush {d8-d9}
    vpop {d8-d9}
    nop
    bx lr
ENDF fp_vpp_d2

    .balign 4
FUNC fp_vpp_8                       /* 9 + 9 */
    nop
    vpush {s16-s23}
    vpop {s16-s23}
    nop
    bx lr
ENDF fp_vpp_8

/* ---------------------------------------------------------------- FPU result latency
 * nop; <producer>; <consumer>; nop; bx lr: the consumer waits one cycle for an arithmetic result,
 * unless it only takes it as a multiply-accumulate's addend (forwarded); the producer is quoted */
.macro FPAIR name, producer:req, consumer:vararg
    .balign 4
FUNC \name
    nop
    \producer
    \consumer
    nop
    bx lr
ENDF \name
.endm

FPAIR fpl_vadd_vadd_dep,   "vadd.f32 s0, s1, s2", vadd.f32 s3, s0, s1
FPAIR fpl_vadd_vadd_indep, "vadd.f32 s0, s1, s2", vadd.f32 s3, s4, s5
FPAIR fpl_vmul_vadd_dep,   "vmul.f32 s0, s1, s2", vadd.f32 s3, s4, s0
FPAIR fpl_vdiv_vstr_dep,   "vdiv.f32 s0, s1, s2", vstr s0, [r0, #20]
FPAIR fpl_vcvt_vmov_dep,   "vcvt.s32.f32 s0, s1", vmov r1, s0
FPAIR fpl_vmla_vmul_dep,   "vmla.f32 s0, s1, s2", vmul.f32 s3, s0, s4
FPAIR fpl_vmul_vmla_addend,  "vmul.f32 s0, s1, s2", vmla.f32 s0, s3, s4
FPAIR fpl_vmla_vmla_addend,  "vmla.f32 s0, s1, s2", vmla.f32 s0, s3, s4
FPAIR fpl_vmul_vmla_operand, "vmul.f32 s0, s1, s2", vmla.f32 s3, s0, s4
FPAIR fpl_vmul_vfma_operand, "vmul.f32 s0, s1, s2", vfma.f32 s0, s0, s4
FPAIR fpl_vabs_vadd_dep,   "vabs.f32 s0, s1", vadd.f32 s3, s0, s1
FPAIR fpl_vadd_vstm_d,     "vadd.f32 s1, s2, s3", vstmia r0, {d0}
FPAIR fpl_vadd_vmov_other, "vadd.f32 s0, s1, s2", vmov r1, s3

/* 200 VADD.F32, each reading the previous result or not (the published lab measurement's sequences) */
    .balign 4
FUNC fpl_chain_dep
    nop
    .rept 200
    vadd.f32 s0, s0, s1
    .endr
    nop
    bx lr
ENDF fpl_chain_dep

    .balign 4
FUNC fpl_chain_indep
    nop
    .rept 200
    vadd.f32 s0, s1, s2
    .endr
    nop
    bx lr
ENDF fpl_chain_indep

/* ---------------------------------------------------------------- unaligned data accesses */
CASE ua_ldr_h,  ldr r1, [r0, #2]        /* word at a halfword address: +1 */
CASE ua_ldr_b,  ldr r1, [r0, #1]        /* word at a byte address: +2 */
CASE ua_ldrh_b, ldrh r1, [r0, #1]       /* halfword at an odd address: +1 */

/* ---------------------------------------------------------------- pairing across a taken branch */
    .balign 4
FUNC xb_loop_ldr                    /* r1 iterations; the loop-head LDR follows an LDR only in memory */
    ldr r2, [r0, #4]
1:  ldr r3, [r0, #8]                /* 16-bit: no branch-target alignment penalty */
    subs r1, r1, #1
    bne 1b
    bx lr
ENDF xb_loop_ldr

    .balign 4
FUNC xb_loop_nop                    /* same loop with a NOP in front */
    nop
1:  ldr r3, [r0, #8]
    subs r1, r1, #1
    bne 1b
    bx lr
ENDF xb_loop_nop

/* ---------------------------------------------------------------- flash and the ART accelerator */
    .balign 32
FUNC fl_straight                    /* 128 x 16-bit NOP executed once: 32 flash words */
    .rept 128
    nop
    .endr
    bx lr
ENDF fl_straight

    .balign 32
FUNC fl_loop                        /* r1 iterations of a 16-instruction body (one 32-byte I-cache line) */
1:  .rept 14
    nop
    .endr
    subs r1, r1, #1
    bne 1b
    bx lr
ENDF fl_loop

/* A chain of taken branches, each landing on its own 64-bit flash word: every hop is a cold
 * I-cache miss on a branch target. fl_hop4 enters the same chain half way, and the word in front
 * of either entry looks the same (a B.N plus padding), so the two calls differ by exactly 4 hops. */
    .balign 32
    b.n 0f                          /* never executed */
    .balign 8
FUNC fl_hop8
0:  b.n 1f
    .balign 8
1:  b.n 2f
    .balign 8
2:  b.n 3f
    .balign 8
3:  b.n 4f
    .balign 8
FUNC fl_hop4
4:  b.n 5f
    .balign 8
5:  b.n 6f
    .balign 8
6:  b.n 7f
    .balign 8
7:  b.n 8f
    .balign 8
8:  bx lr
ENDF fl_hop8

    .balign 8
FUNC fl_literal                     /* r1 == 0: skip the literal load (warms the I-cache only) */
    cbz r1, 2f
    ldr r2, 1f                      /* a PC-relative data read from flash */
2:  nop
    bx lr
1:  .word 0x5a5a5a5a
ENDF fl_literal

    .balign 8
FUNC fl_table                       /* r1 == 0: skip the load; else read the flash word r2 points to */
    cbz r1, 2f
    ldr r2, [r2]                    /* a constant-table read from flash through a register */
2:  nop
    bx lr
ENDF fl_table

    .balign 32
    .global fl_table_word
    .type fl_table_word, %object
fl_table_word:                      /* in its own D-cache line, away from every literal */
    .word 0xa5a5a5a5
    .size fl_table_word, 4
