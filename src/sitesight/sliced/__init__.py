"""The sliced-inference half: slice grid, batched prediction into a stored run, merging, the
border rule, the full-image gate, post-processing, sweeps and exports.

A stored run plus a post-processing spec gives final per-frame `Detections`; everything in this
package is about getting there. Evaluation (`sitesight.evaluation`) imports nothing from here.
"""
