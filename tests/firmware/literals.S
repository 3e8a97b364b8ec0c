@ Three PC-relative literal loads from one flash line, for the ART data-cache model.
.syntax unified
.thumb
.text
.global literals
.type literals, %function
.thumb_func
literals:
    ldr r1, =0x12345678
    ldr r2, =0x1111
    ldr r3, =0x2222
    adds r0, r1, r2
    adds r0, r0, r3
    bx lr
.ltorg
