# Relocation shapes clang does not emit from C but the object layer must handle: addends of
# function addresses through global function symbols (value != 0), a symbol and an address at
# the very end of a section, a legacy `maps` section, a data section pointing into code through
# section symbols, and a section ending in an ld_imm64 (tests shorten it to cut that in two).
	.text
	.globl	fa
	.type	fa,@function
fa:
	call	fb
	exit
	.size	fa, 16
	.globl	fb
	.type	fb,@function
fb:
	r0 = 2
	exit
	.size	fb, 16
	.globl	fc
	.type	fc,@function
fc:
	r1 = text_end ll
.Lfc_body:
	r0 = 0
	exit
	.size	fc, 32
	.globl	text_end
text_end:

	.section	xdp,"ax",@progbits
	.globl	prog
	.type	prog,@function
prog:
	r1 = fb ll
	r2 = text_end ll
	r3 = fa ll
	call	fa
	r4 = mapv ll
	r0 = 0
.Lxdp_a:
	exit
.Lxdp_b:
	.size	prog, 88

	.section	tc,"ax",@progbits
	.globl	tcprog
	.type	tcprog,@function
tcprog:
	r0 = 0
	exit
	r1 = mapv ll
	.size	tcprog, 32

	.section	maps,"aw",@progbits
	.globl	mapv
mapv:
	.quad	0

	.section	.data.fp,"aw",@progbits
	.quad	.Lfc_body
	.quad	fa
	.quad	.Lxdp_a
	.quad	.Lxdp_b
