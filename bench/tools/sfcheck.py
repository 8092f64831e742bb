import re,sys
# Part of memtube-bench: see bench/tools/disasm.sh and the README (Benchmarks).
# Heuristic store-to-load forwarding hazard finder on objdump AT&T output.
# Flags a load that overlaps an earlier store (same base register, within
# `win` instructions, no call/ret between, base not rewritten) without being
# contained in it starting at or after its start.
lines=open(sys.argv[1]).read().splitlines()
win=int(sys.argv[2]) if len(sys.argv)>2 else 60
def regsize(r):
    r=r.strip('%')
    if r.startswith('ymm'): return 32
    if r.startswith('xmm'): return 16
    if re.match(r'r\d+d$',r) or re.match(r'e[a-z]{2}$',r): return 4
    if re.match(r'r\d+w$',r) or r in('ax','bx','cx','dx','si','di','bp','sp'): return 2
    if re.match(r'r\d+b$',r) or r in('al','bl','cl','dl','sil','dil','bpl','spl','ah','bh','ch','dh'): return 1
    if r.startswith('r'): return 8
    return None
def full(r):
    r=r.strip('%')
    m={'eax':'rax','ebx':'rbx','ecx':'rcx','edx':'rdx','esi':'rsi','edi':'rdi','ebp':'rbp','al':'rax','bl':'rbx','cl':'rcx','dl':'rdx','sil':'rsi','dil':'rdi','bpl':'rbp','ax':'rax'}
    if r in m: return m[r]
    mm=re.match(r'(r\d+)[dwb]$',r)
    return mm.group(1) if mm else r
mem=re.compile(r'(-?0x[0-9a-f]+|-?\d+)?\((%[a-z0-9]+)\)$')
stores=[]
n=0
for i,l in enumerate(lines):
    m=re.match(r'\s*([0-9a-f]+):\s+(\S+)\s+(.*)',l)
    if not m: continue
    addr,op,args=m.groups()
    args=args.split('#')[0].strip()
    parts=[a.strip() for a in re.split(r',(?![^(]*\))',args)]
    if op.startswith('call') or op=='ret':
        stores=[]; continue
    if op.startswith('j') or len(parts)!=2: continue
    src,dst=parts
    def off(x):
        mm=mem.fullmatch(x)
        if not mm: return None
        o=mm.group(1) or '0'
        return (int(o,16) if 'x' in o else int(o), mm.group(2))
    so,do=off(src),off(dst)
    if do is None and dst.startswith('%'):
        b=full(dst)
        stores=[s for s in stores if s[4]!=b]
    if do is not None and op.startswith('mov'):
        if src.startswith('$'):
            sz={'movl':4,'movq':8,'movb':1,'movw':2}.get(op,8)
        else:
            sz=regsize(src) or 8
        stores.append((i,do[0],sz,addr,do[1].strip('%')))
    if so is not None and re.match(r'(mov|cmp|add|sub|and|or|test|xor|lea)',op) and not op.startswith('lea'):
        if op in('movzbl','movzbq','movsbl','cmpb','testb','movb'): sz=1
        elif op in('movzwl','movswl','cmpw'): sz=2
        elif op in('cmpl','testl','movd','movss'): sz=4
        elif op in ('cmpq','movq','movsd','movlps'): sz=8
        elif op in ('movups','movaps','movdqu','movdqa'): sz=16
        else: sz=regsize(dst) or 8
        base=so[1].strip('%')
        for (j,o,ssz,saddr,sb) in reversed(stores):
            if i-j>win: break
            if sb!=base: continue
            if o < so[0]+sz and so[0] < o+ssz:
                if not (so[0]>=o and so[0]+sz<=o+ssz):
                    print(f"HAZARD load {addr} {op} {so[0]:#x}({base})+{sz} over store {saddr} {o:#x}+{ssz}")
                    n+=1
                break
print(f"{n} hazards", file=sys.stderr)
