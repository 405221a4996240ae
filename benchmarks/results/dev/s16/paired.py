import json, math, sys
d=json.load(open(sys.argv[1])); base=sys.argv[2]
sy={s["system"]:s for s in d["systems"]}
for name in sy:
    if name==base: continue
    out=[]
    for m in ("wer","dnsmos_p808","dnsmos_sig"):
        a={k:v[m] for k,v in sy[base]["utterances"].items()}; b={k:v[m] for k,v in sy[name]["utterances"].items()}
        diffs=[b[k]-a[k] for k in a if k in b]; n=len(diffs); mu=sum(diffs)/n
        se=math.sqrt(sum((x-mu)**2 for x in diffs)/(n-1)/n)
        out.append(f"{m} {mu:+.4f} (SE {se:.4f})")
    print(name,"vs",base,"n",n,"|"," | ".join(out))
