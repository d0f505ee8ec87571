"""Small model texts shared by several test modules."""

#: X -> M -> Y with latents, labelled paths and the indirect effect defined (ab).
MEDIATION = """
X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
Y =~ y1 + y2 + y3
M ~ a*X
Y ~ b*M + c*X
ab := a*b
"""

#: Hayes model 14 with latents: X -> M -> Y, W moderates the M -> Y path; labelled paths and
#: a chained definition (ab2 uses ab).
MODERATED = """
X =~ x1 + x2 + x3
M =~ m1 + m2 + m3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
M ~ a*X
Y ~ c*X + b*M + W + d*M:W
ab := a*b
ab2 := ab * 2
"""

#: A latent interaction without mediation: Y on X, W and their product.
INTERACTION = """
X =~ x1 + x2 + x3
W =~ w1 + w2 + w3
Y =~ y1 + y2 + y3
Y ~ X + W + X:W
"""
