"""The 27 Rakuten France product type codes, their names and real class frequencies."""

# Counts in the 84,916-row challenge training set; the sample generator draws from them.
CLASS_COUNTS = {
    2583: 10209, 1560: 5073, 1300: 5045, 2060: 4993, 2522: 4989, 1280: 4870,
    2403: 4774, 2280: 4760, 1920: 4303, 1160: 3953, 1320: 3241, 10: 3116,
    2705: 2761, 1140: 2671, 2582: 2589, 40: 2508, 2585: 2496, 1302: 2491,
    1281: 2070, 50: 1681, 2462: 1421, 2905: 872, 60: 832, 2220: 824,
    1301: 807, 1940: 803, 1180: 764,
}

CATEGORY_NAMES = {
    10: "Livres d'occasion", 40: "Jeux vidéo d'import", 50: "Accessoires de jeux vidéo",
    60: "Consoles", 1140: "Figurines", 1160: "Cartes à collectionner",
    1180: "Figurines de jeux de rôle", 1280: "Jouets pour enfants", 1281: "Jeux de société",
    1300: "Modélisme et radiocommandés", 1301: "Chaussettes bébé et jeux de bar",
    1302: "Jeux d'extérieur", 1320: "Puériculture", 1560: "Mobilier",
    1920: "Linge de maison", 1940: "Alimentation", 2060: "Décoration",
    2220: "Animalerie", 2280: "Magazines anciens", 2403: "Lots de livres et BD",
    2462: "Lots de jeux et consoles d'occasion", 2522: "Papeterie",
    2582: "Mobilier de jardin", 2583: "Piscine et spa", 2585: "Bricolage et outillage",
    2705: "Livres neufs", 2905: "Jeux PC en téléchargement",
}

# Sorted so that class index i always means the same code, in training and in serving.
CODES = sorted(CLASS_COUNTS)
CODE_TO_INDEX = {code: i for i, code in enumerate(CODES)}
N_CLASSES = len(CODES)
