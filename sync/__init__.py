"""Ops, envelopes, the causal DAG, the circle-state fold, the store and reconciliation.

Sans-IO: plain functions and classes, no sockets, no trio, no clocks inside the logic.
"""
