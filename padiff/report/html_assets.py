"""The HTML report's inline style sheet and script (no network: everything is in the page)."""

from __future__ import annotations

from collections.abc import Sequence

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
header{padding:14px 22px;color:#fff;font-size:18px;font-weight:600}
header.ok{background:#2c7a3f} header.fail{background:#b3261e}
main{padding:8px 22px 40px} h2{font-size:16px;margin:22px 0 8px}
.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 14px;margin:8px 0}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px} .kv div:nth-child(odd){color:#5a6372}
.mono,.num,td{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.trees{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.tree{position:relative;background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:0 0 6px;
max-height:520px;overflow:auto}
.treebox h3{margin:2px 10px 6px;font-size:14px}
.node{padding:1px 8px;white-space:nowrap;border-left:4px solid transparent;cursor:default}
.node i{color:#6b7280;font-style:normal} .node.paired{cursor:pointer}
.node.unpaired{color:#8a929e} .node .num{margin-left:10px;color:#6b7280} .st{display:none}
.node.root{position:sticky;top:0;background:#e6ebf3;z-index:1;border-bottom:1px solid #d5dbe5}
.node.first{background:#ffd9d5;font-weight:600}
.here{color:#b3261e;margin-left:10px;font-weight:700} .skip{color:#8a929e;margin-left:8px}
.hl{outline:2px solid #2563eb;background:#dbe7ff!important} .pin{outline:3px solid #1d4ed8}
table{border-collapse:collapse;background:#fff;width:100%} th,td{border:1px solid #e3e6eb;padding:3px 6px;
text-align:left;vertical-align:top} th{background:#eef1f5;font-weight:600;position:sticky;top:0}
tr.fail td{background:#fff3f2} tr.first td{background:#ffd9d5;font-weight:600} tr[data-pair]{cursor:pointer}
svg.plot{background:#fff;border:1px solid #dde1e7;border-radius:6px;width:100%;height:auto;display:block}
.frame{fill:none;stroke:#c9ced6} .grid{stroke:#eceff3} .tick{font-size:10px;fill:#6b7280}
.axis{font-size:11px;fill:#374151} .tol.atol{stroke:#d97706;stroke-dasharray:5 4}
.tol.rtol{stroke:#9333ea;stroke-dasharray:2 5;opacity:.7} .tick.rel,.axis.rel{fill:#7e22ce}
.stepline{stroke:#9ca3af;stroke-dasharray:2 3} .line{fill:none;stroke-width:1.4}
.line.abs{stroke:#2563eb} .line.rel{stroke:#9333ea;stroke-dasharray:3 3}
.pt.pass{fill:#3f9d55} .pt.fail{fill:#d0433a} .pt.first{stroke:#7f1d1d;stroke-width:3}
.pt.hl{stroke:#2563eb;stroke-width:3;outline:none} .firstlabel{font-size:11px;fill:#b3261e;font-weight:600}
.legend span{margin-right:16px} .sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:4px}
.warn{color:#92400e} button{font:inherit;padding:2px 10px;margin-right:6px;cursor:pointer}
button.active{background:#1d4ed8;color:#fff;border-color:#1d4ed8}
.banner{background:#fde8e6;border:2px solid #b3261e;border-radius:6px;padding:10px 14px;margin:12px 0;
font-size:15px} .banner b{color:#b3261e}
#stages{position:sticky;top:0;z-index:3;background:#f6f7f9;padding:8px 0;border-bottom:1px solid #dde1e7}
#stages button{padding:4px 12px} #stages .bad{color:#b3261e;font-weight:600} #stages button.active .bad{color:#fff}
.stageplots{display:none} .single{color:#374151}
details.card summary{cursor:pointer;font-weight:600}
"""


def stage_css(stages: Sequence[str]) -> str:
    """Per stage: colour of the trees' nodes, the numbers shown, the plots and the table column."""
    out = []
    for s in stages:
        sel = f'body[data-stage="{s}"]'
        out.append(f'{sel} .node[data-st-{s}="pass"]{{border-left-color:#3f9d55}}'
                   f'{sel} .node[data-st-{s}="fail"]{{border-left-color:#d0433a;background:#fff3f2}}'
                   f'{sel} .st[data-st="{s}"]{{display:inline}}{sel} .stageplots[data-stage="{s}"]{{display:block}}'
                   f'{sel} #pairs [data-st="{s}"]{{box-shadow:inset 0 0 0 2px #93b4f5}}')
    return "\n".join(out)


STAGE_LABELS = {"forward": "forward", "loss": "loss", "backward": "backward", "grad": "grads", "weight": "weights",
                "assign_weight": "weight assignment"}

JS = r"""
(function(){
  function all(k){return document.querySelectorAll('[data-pair="'+k+'"]');}
  function mark(k,cls,on){all(k).forEach(function(e){e.classList.toggle(cls,on);});}
  document.addEventListener('mouseover',function(ev){var t=ev.target.closest('[data-pair]');
    if(t){mark(t.getAttribute('data-pair'),'hl',true);}});
  document.addEventListener('mouseout',function(ev){var t=ev.target.closest('[data-pair]');
    if(t){mark(t.getAttribute('data-pair'),'hl',false);}});
  var pinned=null;
  function pin(k,from){if(pinned!==null){mark(pinned,'pin',false);}
    if(pinned===k){pinned=null;return;}pinned=k;mark(k,'pin',true);
    all(k).forEach(function(e){if(e!==from&&e.classList.contains('node')){var t=e.parentNode;
      t.scrollTop=Math.max(0,e.offsetTop-t.clientHeight/3);}});}
  document.addEventListener('click',function(ev){var t=ev.target.closest('[data-pair]');
    if(t){pin(t.getAttribute('data-pair'),t);}});
  function showX(x){document.querySelectorAll('svg.plot[data-x]').forEach(function(s){
      s.style.display=(s.getAttribute('data-x')===x)?'':'none';});
    document.querySelectorAll('button[data-x]').forEach(function(b){
      b.classList.toggle('active',b.getAttribute('data-x')===x);});}
  document.querySelectorAll('button[data-x]').forEach(function(b){b.addEventListener('click',function(){
    showX(b.getAttribute('data-x'));});});
  showX(location.hash==='#depth'?'depth':'order');
  function showStage(s){if(!document.querySelector('button[data-stage="'+s+'"]')){return;}
    document.body.setAttribute('data-stage',s);
    document.querySelectorAll('button[data-stage]').forEach(function(b){
      b.classList.toggle('active',b.getAttribute('data-stage')===s);});}
  document.querySelectorAll('button[data-stage]').forEach(function(b){b.addEventListener('click',function(){
    showStage(b.getAttribute('data-stage'));});});
  var st=/[#&]stage=(\w+)/.exec(location.hash);if(st){showStage(st[1]);}
  // scroll a tree only when its first difference is out of view; the root row stays pinned on top
  document.querySelectorAll('.tree .node.first').forEach(function(n){var t=n.parentNode;
    if(n.offsetTop+n.offsetHeight>t.scrollTop+t.clientHeight){t.scrollTop=n.offsetTop-t.clientHeight/2;}});
  var m=/^#pair=(\d+)$/.exec(location.hash);if(m){pin(m[1],null);}
})();
"""
