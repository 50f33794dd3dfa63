"""Synthetic product texts: catalogue-style titles and descriptions whose words depend on the class.

All word lists are invented catalogue vocabulary; nothing is copied from the challenge data.
"""

import functools
import math
import random
from dataclasses import dataclass

from rakuten_mm.categories import CODES


def _words(text: str) -> tuple[str, ...]:
    """Split a '|'-separated word list (compact to write, easy to read)."""
    return tuple(word.strip() for word in text.split("|") if word.strip())


# --- Noise knobs -----------------------------------------------------------------------------
# Ambiguous listings, the reason text alone stays below ~0.9 F1 (as on the real catalogue):
# - sibling: the row reads like a sibling class (confidently wrong for any text model);
# - mixed: half its class words come from a sibling (text hesitates, the photo can decide);
# - vague: no class words at all, only family and generic ones (same).
SIBLING_TEXT_RATE = 0.05
MIXED_TEXT_RATE = 0.12
VAGUE_TEXT_RATE = 0.10
# How a title's words are drawn after its head phrase; family and generic words carry little or no
# class signal, so their weight sets how often a short title is ambiguous within its family.
TITLE_WORD_MIX = {"class": 0.30, "family": 0.30, "generic": 0.25, "attribute": 0.15}
TITLE_WORD_POOLS, TITLE_WORD_WEIGHTS = tuple(TITLE_WORD_MIX), tuple(TITLE_WORD_MIX.values())
# Share of rows whose title starts with a family word instead of a class phrase (vague listings).
VAGUE_HEAD_RATE = 0.25
# Descriptions are long; most of their sentences are boilerplate so they add little signal.
CLASS_SENTENCE_RATE = 0.30
# Title lengths: lognormal around the real median (~60-65 characters), clipped to the real range.
TITLE_MEDIAN_CHARS = 58
TITLE_LENGTH_SIGMA = 0.45
TITLE_MIN_CHARS, TITLE_MAX_CHARS = 10, 250
# Most sellers capitalise every word, some write in lower case, a few shout.
TITLE_CASE_RATE, UPPER_CASE_RATE = 0.80, 0.03
# Brands: half of them recur within a class (a weak cue, as real brands are); a few seller
# suffixes ("_Name1234") add the unique junk tokens real titles carry.
BRAND_RATE, CLASS_BRAND_RATE, SELLER_SUFFIX_RATE = 0.30, 0.5, 0.05
# Sentences per description: geometric, median ~10 (~600 characters) with a long tail of spec sheets.
DESCRIPTION_SENTENCE_P, DESCRIPTION_MAX_SENTENCES = 0.06, 30
# Descriptions often repeat the title; some families have their own stock sentences.
REPEAT_TITLE_RATE, FAMILY_SENTENCE_RATE = 0.30, 0.25
# Share of present descriptions with HTML tags / entities (the pipeline's cleaner must strip them).
HTML_TAG_RATE = 0.19
HTML_ENTITY_RATE = 0.40
# Share of descriptions whose language follows the title's (the rest are French).
DESCRIPTION_SAME_LANGUAGE_RATE = 0.8

# Share of rows without description; books and magazines are mostly listed by title only.
DEFAULT_MISSING_DESCRIPTION_RATE = 0.25
MISSING_DESCRIPTION_RATE = {
    10: 0.85, 2705: 0.70, 2403: 0.92, 2280: 0.90, 1160: 0.85, 1180: 0.75, 40: 0.60, 1140: 0.60,
    2462: 0.75, 1320: 0.40, 1281: 0.30, 1280: 0.30, 50: 0.30, 60: 0.30,
    2583: 0.04, 1560: 0.04, 2582: 0.06, 2060: 0.08, 1920: 0.08, 2585: 0.06, 2220: 0.05,
    1940: 0.08, 2905: 0.02, 1302: 0.10, 1300: 0.12, 1301: 0.15, 2522: 0.12,
}

# Share of each class's titles in English / German (imports, RC parts, academic books...).
ENGLISH_RATE = {
    10: 0.45, 40: 0.30, 50: 0.22, 60: 0.18, 1140: 0.20, 1160: 0.25, 1180: 0.45, 1280: 0.22,
    1281: 0.35, 1300: 0.38, 1302: 0.30, 1560: 0.15, 1920: 0.25, 2060: 0.18, 2220: 0.25, 2905: 0.20,
}
GERMAN_RATE = {10: 0.06, 40: 0.10, 1320: 0.06, 1281: 0.05, 2060: 0.03}

# --- Word lists --------------------------------------------------------------------------------
# Placeholders ({n}, {k}, {num}, {year}, {date}, {ref}, {dim}) are filled per row by fill_placeholders.
CLASS_WORDS = {
    10: _words("Vendu En L'état|Exemplaire De Travail|Édition Originale|Ancien Livre|Livre D'occasion|"
               "Édition De {year}|Reliure Cuir|Dos Toilé|Bon État|Envoi D'auteur|Mémoires|Souvenirs|"
               "Correspondance|Essai|Poèmes|Recueil|Chroniques|Étude Critique|Traité|Leçons|Discours|"
               "Carnets|Biographie|Théologie|Psychanalyse|Sociologie|Ethnologie|Linguistique|Grammaire|"
               "Dictionnaire Ancien|Récits|Contes Et Légendes|Jauni|Poche|Broché Ancien|Première Édition|"
               "Qu'est-Ce Que|Réflexions Sur|Introduction À|Éloge De"),
    2705: _words("Nouvelle Édition|Tome {k}|Volume {k}|Broché|Grand Format|Guide Pratique|Manuel|Méthode|"
                 "Cahier D'exercices|Fiches De Révision|Concours|Droit Civil|Économie|Médecine|Procédures|"
                 "Pédagogie|Développement Personnel|Recettes|Le Grand Livre De|Les Fondamentaux|Préface De|"
                 "Illustré|Roman Policier|Thriller|Littérature Jeunesse|Album Jeunesse|Édition Collector|"
                 "Parution {year}|Inédit|Témoignage|Lettres Modernes|Sciences Humaines|Dès {k} Ans|"
                 "Les Fiches De Lecture|Édition Augmentée|Enquête|Précis De|Nouveau Roman"),
    2403: _words("Lot De {k} Livres|Lot Bd|Lot Mangas|Tomes 1 À {n}|Série Complète|Intégrale|Collection Complète|"
                 "Bande Dessinée|Manga|Albums|Lot De Romans|Lot Revues|{n} Volumes|Lot Livres Poche|"
                 "Bibliothèque Rose|Bibliothèque Verte|Livres Jeunesse|Lot Comics|Numéros 1 À {n}|"
                 "Lot Encyclopédie|Coffret Intégrale|Lot Livres Scolaires|Tome {k} Et Tome {n}|Lot|"
                 "Lot Partitions|Les Grandes Époques|Petits Livres|Lot Contes|Lot Policier|Lot Science-Fiction|"
                 "Lot Romans Sentimentaux|Mini Contes|Ensemble De Livres|Lot De {k} Bd"),
    2280: _words("N° {num}|Revue|Magazine|Journal|Hebdomadaire|Mensuel|Numéro Spécial|Hors-Série|Supplément|"
                 "Bulletin|Almanach|Programme|Affiche|Dépliant|Catalogue Ancien|Presse Ancienne|Télé Jours|"
                 "Illustré|Petit Journal|Gazette|Mode Et Travaux|Sommaire|Couverture|Reportage|Interview|"
                 "Vedettes|Actualités|Édition Du Soir|Quotidien|Années {n}|Du {date}|De {year}|Spécial Noël|"
                 "Recto-Verso|Numéro {num}|Page De Une"),
    40: _words("[Import Allemand]|[Import Japonais]|[Import Anglais]|[Import Us]|[Jeu Pc]|Version Allemande|"
               "Notice|Cd-Rom|Dvd-Rom|Jeu D'aventure|Jeu De Course|Jeu De Rôle|Simulation|Stratégie|"
               "Enhanced Edition|Remastered|Platinum|Classics|Big Box|Jeu Vidéo|Chroniques|Saga|Warriors|"
               "Racing|Kingdom|Quest|Chapitre {k}|Épisode {k}|Pc Cd|Mac|Game Of The Year|Ps2|Gamecube|"
               "Dreamcast|Megadrive|Super Nintendo|Jeu En Boîte"),
    50: _words("Manette|Manette Filaire|Manette Sans Fil|Câble|Chargeur|Station De Charge|Housse|"
               "Étui De Protection|Coque|Support|Volant|Pédalier|Casque Gamer|Micro|Adaptateur|Joystick|"
               "Gâchette|Grip|Protection Écran|Batterie|Carte Mémoire|Stick|Bouton|Fauteuil Gaming|"
               "Tapis De Souris|Clavier Gamer|Souris Gamer|Réalité Virtuelle|Capteur|Dock|Hub Usb|"
               "Skin Autocollant|Sacoche|Kit Accessoires|Contrôleur|Gamepad|Câble Hdmi|Ventilateur"),
    60: _words("Console|Console Portable|Console Rétro|Mini Console|Console De Salon|Pack Console|Bundle|"
               "Lecteur De Jeux|{num} Jeux Intégrés|16 Bits|8 Bits|Écran Lcd|{k} Pouces|Rétroéclairage|Sortie Tv|"
               "Mini Classic|Slim|500 Go|1 To|250 Go|Console Neuve|Handheld|Arcade|Borne Arcade|Pocket|"
               "Machine De Jeu|Classique Vintage|Double Joueur|Tf Card|Mp4|Jeux Classiques|Console Blanche|"
               "Console Noire|Portable Rétro"),
    2462: _words("Lot De Jeux|Lot Console|Occasion|Vend|Avec 2 Manettes|Complet|En Boîte|Sans Notice|"
                 "Notice Seule|Boîte Vide|Lot Ensemble|Loose|Testé Fonctionne|+ {n} Jeux|Cartouches|"
                 "Lot Cartouches|Lot Dvd|Hs Pour Pièces|Jeux Divers|Lot Accessoires|Lot Manettes|Rétrogaming|"
                 "Tout Fonctionne|Bon Etat|Lot De {k} Jeux|Pack Occasion|Console + Jeux|Lot Collection|"
                 "Lot Jeux Ps2|Lot Jeux Ds|Console Seule|Lot De {k} E Liquide|Vendu Sans Garantie"),
    2905: _words("Jeu En Téléchargement|Code D'activation|Steam|Uplay|Clé Cd|Dlc|Season Pass|Pack Extension|"
                 "Deluxe Edition|Premium|Gold Edition|Téléchargement|Version Numérique|Digital|Pc Mac|"
                 "Windows 10|Compte Steam|Édition Complète|Bundle Numérique|Contenu Téléchargeable|Soundtrack|"
                 "Early Access|Indé|Casual|Objets Cachés|Hidden Object|Survival|Simulateur|Tycoon|"
                 "Collector's Edition|Remake|Clé Numérique|Activation En Ligne"),
    1280: _words("Peluche|Poupée|Puzzle|Jouet En Bois|Squishy|Hand Spinner|Dinosaure|Licorne|Poney|"
                 "Voiture Jouet|Circuit|Train En Bois|Cuisine Enfant|Dînette|Blocs De Construction|Briques|"
                 "Jeu D'éveil|Hochet|Slime|Pâte À Modeler|Marionnette|Toupie|Robot|Kawaii|Anti-Stress|"
                 "Figurine Animal|Déguisement|Baguette Magique|Ballon Sauteur|Tableau Magnétique|Xylophone|"
                 "Boîte À Musique|Cube Magique|Jouet Musical|Balle Rebondissante|Bulles|Hélicoptère Jouet|"
                 "Poupon|Maison De Poupée"),
    1281: _words("Jeu De Société|Jeu De Plateau|Jeu De Cartes|Extension|Boîte De Base|Dés|Plateau|Pions|"
                 "Figurines Métal|Stratégie|Coopératif|Jeu D'ambiance|Quiz|Échecs|Dames|Backgammon|Tarot|"
                 "Belote|Poker|Jeu De L'oie|Mission Pack|Deck Building|Jeu Familial|2 À {k} Joueurs|"
                 "Règles En Français|Escape Game|Enquête|Dominos|Cartes À Jouer|Mahjong|Jeu D'adresse|"
                 "Jeu Éducatif|Jeu De Mémoire|Crossover Pack|Jetons|Sablier"),
    1302: _words("Balançoire|Toboggan|Trampoline|Portique|Seau|Pelle|Jeux De Plage|Cerf-Volant|Trottinette|"
                 "Skateboard|Vélo Enfant|Draisienne|Ballon|Football|Panier De Basket|Raquettes|Badminton|"
                 "Frisbee|Pétanque|Lampe Frontale|Camping|Randonnée|Sport|Fitness|Yoga|Leggings|Gourde|"
                 "Tente De Jeu|Piscine À Balles|Bac À Sable|Pistolet À Eau|Kayak|Boomerang|Corde À Sauter|"
                 "Montre Sport|Bracelet Fitness|Plein Air|Lampe De Poche"),
    1300: _words("Drone|Quadcopter|Rc|Radiocommandé|Voiture Rc|Hélicoptère|Avion Rc|Bateau Rc|Brushless|"
                 "Moteur|Esc|Batterie Lipo|Servo|Télécommande|Fpv|Caméra Hd|Wifi|Gyroscope|Crawler|Buggy|"
                 "Échelle 1/10|1:18|Maquette|Modèle Réduit|Miniature|Voiture Miniature|Die Cast|"
                 "Train Électrique|Locomotive|Wagon|Rails|Hélice|Châssis|Pneus|Amortisseurs|Aluminium Cnc|"
                 "Essieu|Kit De Montage|Vitesse|{num}kv|-Générique"),
    1320: _words("Poussette|Siège Auto|Lit Parapluie|Gigoteuse|Turbulette|Bavoir|Biberon|Tétine|"
                 "Chauffe-Biberon|Tapis D'éveil|Transat Bébé|Porte-Bébé|Écharpe De Portage|Chaise Haute|"
                 "Réhausseur|Matelas À Langer|Table À Langer|Sac À Langer|Babyphone|Barrière De Sécurité|"
                 "Couffin|Nid D'ange|Body|Pyjama|Pantalon Bébé|Ombrelle|Habillage Pluie|Thermomètre De Bain|"
                 "Baignoire Bébé|Anneau De Dentition|Veilleuse|Mouche-Bébé|Stérilisateur|"
                 "Coussin D'allaitement|Nacelle|Pack Couleur"),
    1301: _words("Chaussettes|Chaussettes Bébé|Chaussons|Chaussures Premiers Pas|Bottes Anti-Slip|Slipper|"
                 "Fléchettes|Ailettes|Shafts|Cible|Billard|Craies|Queue De Billard|Boules De Billard|"
                 "Baby-Foot|Balles Baby-Foot|Jeu De Fléchettes|Tapis De Billard|Triangle|Flipper|Bar|Pointes|"
                 "Tractopelle|Porteur|Tracteur À Pédales|Remorque|Chaussette Hiver|Motif Animal|Antidérapant|"
                 "Lot De {k} Paires|Chaussettes Coton|Pointes Souples"),
    1140: _words("Figurine D'action|Figurine Articulée|Figurine Manga|Figurine Anime|Statue|Buste|Goodies|"
                 "Porte-Clés|T-Shirt|Mug|Bobblehead|Chibi|Mini Figurine|Figurine Pvc {k}0 Cm|Édition Deluxe|Film|"
                 "Série Tv|Super-Héros|Chevalier D'or|Guerrier|Mecha|Samouraï|Ninja|Princesse|Dessin Animé|"
                 "Diorama|Échelle 1/6|Accessoires Inclus|Boîte Fenêtre|Blister|Vintage {year}|"
                 "Figurines En Plastique|Myth Cloth|Pop Vinyl|Figurine Kinder"),
    1180: _words("Jeu De Rôle|Jdr|Donjons|Dragons|Wargame|Space Marine|Escouade|Figurine À Peindre|28mm|"
                 "Livre De Règles|Supplément Jdr|Campagne|Scénario|Module|Écran Du Mj|Elfes|Orques|Nains|"
                 "Dés Polyèdres|Clix|Miniatures|Armée|Régiment|Codex|Livret|Flotte|Maître Du Jeu|Donjon|Sorts|"
                 "Grimoire|Figurine Cheval|Terrain Décor|Peinture Figurines|Role Aids|Advanced"),
    1160: _words("Carte|Cartes|Carte À Collectionner|Booster|Display|Deck|Commune|Rare|Holo|Foil|Full Art|Vf|"
                 "1ère Éd|Pokemon|Yu-Gi-Oh|Magic|Panini|Trading Card|Rookie|Basket|Lot De Cartes|"
                 "Carte Brillante|Promo|Secrète|Ultra Rare|Énergie|Dresseur|Monstre|Piège|Gx|Vmax|Pv {num}|"
                 "{ref}|{k}/{num}|Édition Limitée Carte|Vignettes"),
    1920: _words("Housse De Coussin|Coussin|Taie D'oreiller|Oreiller|Housse De Couette|Parure De Lit|"
                 "Drap Housse|Drap|Couverture|Plaid|Nappe|Serviette De Bain|Drap De Bain|Torchon|Rideau|"
                 "Voilage|Store|Tapis De Bain|Peignoir|Linge De Lit|Jeté De Canapé|Coussin Décoratif|Couette|"
                 "Édredon|Sets De Table|Chemin De Table|Housse De Matelas|Protège-Matelas|Microfibre|Satin|"
                 "45 X 45 Cm|140x200|240x220|Flanelle|Velours|Case Taie"),
    1940: _words("Café|Thé|Chocolat|Miel|Confiture|Biscuits|Bonbons|Épices|Sauce|Huile D'olive|Vinaigre|Pâtes|"
                 "Riz|Quinoa|Bio|Équitable|Sans Gluten|Grains|Moulu|Capsules|Dosettes|Sucre|Farine|Sirop|"
                 "Jus|Fruits Secs|Noix|Amandes|Conserve|Pâté|Terrine|Sel|Poivre|Emporte-Pièce|Moule À Gâteau|"
                 "Pâtisserie|Colorant Alimentaire|{n}0 Gr|{k} Kg|{n} Cl|Sachet|Boîte Métal"),
    2220: _words("Chien|Chat|Chiot|Chaton|Animaux|Collier|Laisse|Harnais|Niche|Panier Pour Chien|"
                 "Coussin Pour Chat|Arbre À Chat|Griffoir|Litière|Gamelle|Distributeur Croquettes|Croquettes|"
                 "Friandises|Jouet Pour Chien|Os À Mâcher|Manteau Pour Chien|Vêtements Pour Chiens|Aquarium|"
                 "Poissons|Cage|Oiseaux|Rongeur|Hamster|Lapin|Terrarium|Tapis Rafraîchissant|Brosse|"
                 "Toilettage|Anti-Puces|Filets De Poulet|Animal De Compagnie|Sac De Transport"),
    2522: _words("Carnet De Notes|Bloc-Notes|Cahier|Agenda|Journal A5|Classeur|Trieur|Chemise|Pochette|"
                 "Enveloppes|Stylo|Stylo Plume|Crayons|Feutres|Surligneur|Gomme|Règle|Ciseaux|Agrafeuse|"
                 "Trombones|Étiquettes|Papier|Ramette|Cartes De Visite|Calendrier|Papier Cadeau|"
                 "Carte De Vœux|Tampon|Encre|Cartouche D'encre|Toner|Porte-Documents|Fichier|{n}0 Pages|"
                 "Seyès|Grands Carreaux|90g|A4|Kraft"),
    2583: _words("Piscine|Piscine Hors Sol|Piscine Gonflable|Piscine Tubulaire|Spa|Spa Gonflable|Jacuzzi|Liner|"
                 "Filtre À Sable|Pompe|Cartouche Filtrante|Skimmer|Robot Piscine|Aspirateur Piscine|"
                 "Électrolyseur|Chlore|Galets De Chlore|Brome|Ph Moins|Ph Plus|Traitement De L'eau|"
                 "Anti-Algues|Floculant|Clarifiant|Bâche|Bâche À Bulles|Couverture Isotherme|Échelle Piscine|"
                 "Douche Solaire|Pompe À Chaleur|Réchauffeur|Bouée|Matelas Gonflable|Frite|Épuisette|"
                 "Appui-Tête|Hivernage|{n} M3|Tuyau Piscine"),
    2585: _words("Perceuse|Visseuse|Scie|Scie Circulaire|Meuleuse|Ponceuse|Marteau|Tournevis|Clé À Molette|"
                 "Jeu De Clés|Pince|Niveau|Mètre Ruban|Établi|Caisse À Outils|Servante|Compresseur|"
                 "Nettoyeur Haute Pression|Tuyau D'arrosage|Enrouleur|Taille-Haie|Débroussailleuse|Tondeuse|"
                 "Tronçonneuse|Fil Débroussailleuse|Bobine|Souffleur|Pulvérisateur|Escabeau|Chevilles|Vis|"
                 "Forets|Disque|Lame|Outil|Outillage|Cintreuse|Balai|Brouette|Sécateur|Arrosoir"),
    1560: _words("Armoire|Commode|Canapé|Fauteuil|Tabouret|Étagère|Bibliothèque|Table Basse|Table À Manger|"
                 "Buffet|Meuble Tv|Lit|Tête De Lit|Sommier|Matelas|Bureau|Chaise De Bureau|Console Murale|"
                 "Vitrine|Dressing|Penderie|Chevet|{k} Tiroirs|{k} Portes|Banc|Pouf|Housse De Canapé|Tapis|"
                 "Carpette|Meuble À Chaussures|Colonne Salle De Bain|Porte-Manteau|Meuble Rangement|Caisson|"
                 "Futon|Clic-Clac|Méridienne"),
    2582: _words("Salon De Jardin|Chaise De Jardin|Table De Jardin|Transat|Chaise Longue|Bain De Soleil|Hamac|"
                 "Parasol|Pied De Parasol|Tonnelle|Pergola|Tente Chapiteau|Abri De Jardin|Serre|Barbecue|"
                 "Plancha|Brasero|Banc De Jardin|Résine Tressée|Gazon Synthétique|Clôture|Brise-Vue|"
                 "Voile D'ombrage|Coussin Extérieur|Balancelle|Jardinière|Bac À Fleurs|Pot De Fleurs|Hangar|"
                 "Carport|Abri Bûches|Housse De Protection|Teck|Terrasse|Balcon|Extérieur"),
    2060: _words("Horloge Murale|Miroir Décoratif|Cadre Photo|Vase|Bougie|Bougeoir|Photophore|Guirlande|"
                 "Guirlande Lumineuse|Lampe|Ampoule Led|Suspension|Applique|Lanterne|Sticker Mural|Stickers|"
                 "Tableau|Toile|Poster|Statuette|Bouddha|Attrape-Rêves|Fleurs Artificielles|Couronne|Sapin|"
                 "Boule De Noël|Décor Mariage|Ruban|Pendentif Cristal|Diffuseur|Encens|Vide-Poche|"
                 "Boîte Décorative|Coupe Papier|Plaque Métal|Horloge|Halloween|Fête"),
}

CLASS_WORDS_EN = {
    10: _words("Studies In|Theory Of|An Introduction To|The History Of|Handbook|Essays On|Reader|Companion|"
               "Second Edition|Paperback|Hardcover|Ex-Library|Vintage Book|Selected Writings|Lectures|"
               "Proceedings|Guide To|Letters|Journey|Memoir|Poems|Useful Word Book|Tales"),
    40: _words("[Import Us]|[Pc Game]|Game Of The Year|Racing|Adventure Game|Role Playing|Strategy|"
               "Remastered|Kingdom|Legend Of|Warriors|Chronicles|Quest|Collector's Edition|Big Box|Classics"),
    50: _words("Controller|Wired Controller|Wireless Gamepad|Charging Station|Protective Case|Cover|Stand|"
               "Steering Wheel|Gaming Headset|Adapter|Joystick|Trigger|Grip|Screen Protector|Battery Pack"),
    60: _words("Console|Handheld Console|Retro Console|Mini Console|Bundle|Built-In Games|Video Game Player|"
               "Lcd Screen|Inch|Tv Output|Pocket|Arcade|Family|Classic Games"),
    1140: _words("Action Figure|Figure|Statue|Bust|Collectible|Deluxe Edition|Movie|Tv Series|Superhero|"
                 "Warrior|Knight|Mecha|Anime Figure|Scale 1/6|Window Box"),
    1160: _words("Card|Trading Card|Booster Pack|Deck|Common|Rare|Holo|Foil|Full Art|Rookie Card|Promo|"
                 "Secret Rare|Ultra Rare|Energy|Trainer"),
    1180: _words("Role Playing Game|Rpg|Dungeons|Dragons|Wargame|Squad|Miniatures|Rulebook|Supplement|"
                 "Campaign|Scenario|Module|Gm Screen|Elves|Orcs|Dwarves|Outstation|Fleet|Army Book"),
    1280: _words("Plush Toy|Doll|Puzzle|Wooden Toy|Squishy|Fidget Spinner|Dinosaur|Unicorn|Pony|Toy Car|"
                 "Building Blocks|Slow Rising|Stress Toys|Magic Wand|Robot Toy|Kids Toy|Helicopter Toy"),
    1281: _words("Board Game|Card Game|Expansion|Base Game|Dice|Game Board|Miniatures Game|Strategy Game|"
                 "Cooperative|Party Game|Trivia|Chess|Mission Pack|Deck Building|Family Game|Charm Game"),
    1300: _words("Drone|Quadcopter|Rc Car|Helicopter|Rc Plane|Rc Boat|Brushless Motor|Esc|Lipo Battery|"
                 "Servo|Remote Control|Fpv|Hd Camera|Rock Crawler|Buggy|Scale Model|Winch|Accessories|"
                 "Propeller|Chassis|Shock Absorber"),
    1302: _words("Swing|Slide|Trampoline|Beach Toys|Kite|Scooter|Skateboard|Balance Bike|Basketball Hoop|"
                 "Badminton|Frisbee|Headlamp|Camping|Hiking|Sport|Fitness|Yoga|Leggings|Water Bottle|Watch Band"),
    1560: _words("Wardrobe|Chest Of Drawers|Sofa|Armchair|Stool|Shelf|Bookcase|Coffee Table|Dining Table|"
                 "Tv Stand|Bed Frame|Desk|Office Chair|Sofa Cover|Slipcover|Rug|Bar Stool"),
    1920: _words("Pillow Case|Cushion Cover|Pillow|Duvet Cover|Bedding Set|Fitted Sheet|Blanket|Throw|"
                 "Tablecloth|Bath Towel|Curtain|Bath Mat|Bathrobe|Home Decor|Linen|Sofa Throw"),
    2060: _words("Wall Clock|Decorative Mirror|Photo Frame|Vase|Candle|Candle Holder|Garland|String Lights|"
                 "Led Bulb|Wall Sticker|Canvas|Poster|Statue|Dream Catcher|Artificial Flowers|Christmas Ornament"),
    2220: _words("Pet|Dog|Cat|Puppy|Kitten|Leash|Collar|Harness|Dog Bed|Cat Tree|Scratcher|Litter|Bowl|"
                 "Feeder|Chew Toy|Dog Coat|Aquarium|Cage|Cooling Mat|Grooming Brush|Kennel"),
    2905: _words("Digital Download|Activation Code|Steam Key|Dlc|Season Pass|Expansion Pack|Deluxe Edition|"
                 "Premium Edition|Gold Edition|Digital Edition|Early Access|Hidden Object|Survival|Simulator"),
}

CLASS_WORDS_DE = {
    10: _words("Geschichte Der|Einführung In|Band {k}|Auflage|Gedichte|Erzählungen|Taschenbuch|Studien Zur"),
    40: _words("[Import Allemand]|Deutsche Version|Spiel|Abenteuer|Rennspiel|Strategiespiel|Pc Spiel"),
    1320: _words("Schlafsack|Kinderwagen|Babyschale|Lätzchen|Schnuller|Mit Applikation|Sternchen|Krabbeldecke"),
    1281: _words("Gesellschaftsspiel|Brettspiel|Kartenspiel|Erweiterung|Würfel|Familienspiel"),
    2060: _words("Wanduhr|Kerze|Lichterkette|Dekoration|Bilderrahmen|Vase"),
}

# Codes that share vocabulary (and so confuse a text model); a class may sit in several families.
FAMILIES = {
    "books": (10, 2705, 2403, 2280),
    "games": (40, 50, 60, 2462, 2905),
    "toys": (1280, 1281, 1302, 1300),
    "furniture": (1560, 2582, 2060),
    "baby": (1320, 1301, 1280),
    "figurines": (1140, 1180),
    "collect": (1160, 1281, 1140),
    "home": (1920, 2060, 1560),
    "outdoor": (2583, 2582, 2585),
    "paper": (2522, 2280),
    "animals_food": (2220, 1940),
}

FAMILY_WORDS = {
    "books": _words("L'histoire|L'amour|La Guerre|La Cuisine|Le Voyage|Les Enfants|Les Femmes|Le Roman|Paris|"
                    "La France|Le Mystère|Les Secrets|La Vie|La Mort|La Nuit|Le Jardin|L'art|La Musique|"
                    "La Science|La Nature|Le Monde|Les Hommes|L'homme|La Mer|Le Roi|La Religion|Les Chevaliers|"
                    "La Sorcière|Les Aventures|La Mémoire|La Révolution|L'empire|La Poésie|La Philosophie|"
                    "La Politique|L'éducation|La Santé|L'auteur|Éditions|Livre|Lecture|Chapitre|Pages"),
    "games": _words("Jeu|Jeux|Console|Playstation|Ps4|Ps3|Xbox 360|Xbox One|Nintendo|Wii|Switch|Ds|3ds|"
                    "Game Boy|Pc|Gamer|Gaming|Édition|Pal|Ntsc|Vidéo|Joueur|Multijoueur|Rétro|Collector|"
                    "Action|Course|Combat|Manette|Jeu Vidéo"),
    "toys": _words("Jouet|Jouets|Enfant|Enfants|Cadeau De Noël|Jeu|Garçon|Fille|Dès {k} Ans|Éducatif|"
                   "Plastique|Bois|Loisirs|Amusant|Kit|Mini|Toy|Kids|Famille|Jouets Et Loisirs|Cadeau Enfant"),
    "furniture": _words("Meuble|Bois|Métal|Design|Moderne|Scandinave|Salon|Maison|Intérieur|Chêne|Rangement|"
                        "Pieds|Assemblage|Style Industriel|Table|Chaise|Rotin|Pin Massif"),
    "baby": _words("Bébé|Naissance|Nouveau-Né|0-6 Mois|{k} Mois|Enfant|Coton|Doux|Garçon|Fille|Mignon|Baby|"
                   "Cadeau De Naissance|Anti-Dérapant|Rose|Bleu Ciel|Cartoon"),
    "figurines": _words("Figurine|Statuette|Collection|Personnage|Socle|Peint À La Main|Résine|Pvc|{k} Cm|"
                        "Série|Édition|Collector|Héros|Licence Officielle|Figurines"),
    "collect": _words("Collection|Collector|Série|Édition Limitée|Rare|Set|Extension|Pack|Boîte"),
    "home": _words("Maison|Décoration|Déco|Salon|Chambre|Intérieur|Coussin|Home|Décor|Canapé|Noël|Lit"),
    "outdoor": _words("Jardin|Extérieur|Eau|Tuyau|Été|Résistant|Pompe|Bâche|Terrasse|Arrosage|Filtre"),
    "paper": _words("Papier|Journal|Pages|Imprimé|Illustré|Format|Couverture|Carnet"),
    "animals_food": _words("Nourriture|Repas|Naturel|Sachet|Gr|Kg|Friandise|Saveur|Poulet|Bio"),
}

FAMILY_WORDS_EN = {
    "games": _words("Game|Games|Console|Playstation|Xbox|Nintendo|Pc|Gamer|Gaming|Edition|Player|Retro|Video Game"),
    "toys": _words("Toy|Toys|Kids|Children|Gift|Boy|Girl|Educational|Wooden|Fun|Christmas Gift|Family"),
    "books": _words("History|Love|War|Cooking|Travel|Women|Novel|Mystery|Secrets|Life|World|Art|Music|Science"),
    "figurines": _words("Figure|Collection|Character|Base|Hand Painted|Resin|Pvc|Series|Collector|Official"),
    "home": _words("Home|Decor|Living Room|Bedroom|Sofa|Cushion|Christmas|Bed"),
    "furniture": _words("Furniture|Wood|Metal|Modern|Living Room|Storage|Industrial Style|Table|Chair"),
    "collect": _words("Collection|Collector|Series|Limited Edition|Rare|Set|Pack|Box"),
}

GENERIC_WORDS = {
    "fr": _words("Nouveau|Neuf|Haute Qualité|Qualité Supérieure|Pratique|Portable|Pliable|Réglable|Durable|"
                 "Étanche|Léger|Facile À Utiliser|Multifonction|Grand|Petit|Luxe|Premium|Original|Classique|"
                 "Vintage|Moderne|Mode|Style|Pour Maison|Cadeau|Idéal Cadeau|Accessoire|Set|Kit|Ensemble|Pack|"
                 "Universel|Compatible|Nouvelle Version|Modèle|Garanti|Printemps|Été|Automne|Hiver|Pour|Avec|"
                 "Et|De|En|Le|La|Les|Du|Des|Sur|Nouveauté|Qualité|Solide|Élégant|Créatif|Mignon|Fait Main"),
    "en": _words("New|High Quality|Portable|Foldable|Adjustable|Durable|Waterproof|Lightweight|Easy To Use|"
                 "Multifunction|Large|Small|Mini|Luxury|Premium|Original|Classic|Vintage|Modern|Fashion|Style|"
                 "For Home|Gift|Set|Kit|Pack|Universal|With|For|The|And|Of|Hot Sale|Cute|Creative|Handmade"),
    "de": _words("Neu|Mit|Für|Und|Groß|Klein|Set|Geschenk|Original|Qualität|Der|Die|Das"),
}

COLORS = {
    "fr": _words("Noir|Blanc|Rouge|Bleu|Vert|Jaune|Rose|Gris|Marron|Beige|Violet|Orange|Doré|Argenté|"
                 "Multicolore|Bleu Marine|Turquoise|Bordeaux|Kaki|Transparent|Crème|Anthracite"),
    "en": _words("Black|White|Red|Blue|Green|Yellow|Pink|Grey|Brown|Purple|Gold|Silver|Navy|Multicolor"),
    "de": _words("Schwarz|Weiß|Rot|Blau|Grün|Gelb|Rosa|Grau"),
}

MATERIALS = _words("Coton|Polyester|Plastique|Bois|Métal|Acier Inoxydable|Aluminium|Résine|Verre|Céramique|"
                   "Cuir|Silicone|Pvc|Bambou|Laine|Lin|Abs|Carton")

ATTRIBUTE_PATTERNS = _words("{dim}|{n}x{n} Cm|{n}cm|Lot De {k}|({k} Pcs)|Taille {size}|{n}0 Ml|{n}0w|"
                            "Ref {ref}|{ref}|{k} Pièces|X{k}|{n} Mm|{k}m|Pack De {k}|{year}")

BRAND_SYLLABLES = _words("zo|ka|ri|mo|lux|tek|vi|no|pro|fly|ber|gal|sun|ara|kin|vo|ta|nex|qi|ell|"
                         "dor|mi|sa|tor|fi|go|ver|ux|ly|ko")

SIZES = _words("S|M|L|XL|XXL|Unique|36|38|40|42")

DESCRIPTION_SENTENCES = {
    "fr": _words("100% tout neuf et de haute qualité.|Livraison rapide et soignée.|"
                 "Le paquet comprend: 1 x {word}.|Matériel: {material}. Couleur: {color}.|"
                 "Remarque: la couleur peut être légèrement différente selon les écrans.|"
                 "Veuillez vérifier la taille avant d'acheter.|Dimensions : {dim}. Poids : {n}0 g.|"
                 "Parfait pour offrir à l'occasion d'un anniversaire ou de Noël.|"
                 "Caractéristiques: {word} {word2} facile à installer et à nettoyer.|"
                 "Description du produit: {word} en {material} de qualité.|"
                 "Ce {word} est idéal pour la maison le bureau ou les vacances.|"
                 "Produit garanti conforme à la description.|Nous vous remercions de votre confiance.|"
                 "Il est temps de découvrir notre nouvelle gamme {word}.|"
                 "N'hésitez pas à nous contacter pour toute question.|"
                 "Conçu pour durer : {word} résistant et léger.|Quantité: {k} pièce(s).|"
                 "Le {word} s'adapte à tous les usages du quotidien.|Élégant pratique et très facile à utiliser.|"
                 "Expédié sous 48h depuis la France.|Fabriqué avec soin et contrôlé à la main."),
    "en": _words("100% brand new and high quality.|Fast shipping.|Package includes: 1 x {word}.|"
                 "Material: {material}. Color: {color}.|"
                 "Note: due to monitor settings the color may be slightly different.|"
                 "Please check the size before ordering.|Dimensions: {dim}. Weight: {n}0 g.|"
                 "Perfect gift for birthday or Christmas.|Features: {word} {word2} easy to install and clean.|"
                 "Description: {word} made of high quality {material}.|"
                 "This {word} is ideal for home office or travel.|Quantity: {k} piece(s).|"
                 "Designed to last: strong and lightweight {word}."),
    "de": _words("Brandneu und hochwertig.|Lieferumfang: 1 x {word}.|Material: {material}. Farbe: {color}.|"
                 "Perfektes Geschenk zum Geburtstag.|Maße: {dim}."),
}

# Sentences that only one family writes: part of what makes a description informative.
FAMILY_SENTENCES = {
    "books": _words("Ouvrage en bon état général couverture légèrement usée.|Vendu en l'état.|"
                    "Résumé : un récit sur {word} et {word2}.|Quelques annotations au crayon en marge.|"
                    "Livre d'occasion expédié sous film protecteur.|Sommaire : {word} - {word2} - {word}.|"
                    "Les pages sont jaunies mais complètes.|Édition illustrée de nombreuses gravures."),
    "games": _words("Produit d'import : langues et sous-titres français pas toujours disponibles.|"
                    "Compatible avec la plupart des consoles et des PC.|Code à activer sur un compte valide.|"
                    "Testé et fonctionnel, vendu sans boîte d'origine.|Plongez dans une aventure {word}.|"
                    "Jouez seul ou à plusieurs en écran partagé."),
    "toys": _words("Ne convient pas aux enfants de moins de 36 mois.|Développe la motricité et l'imagination.|"
                   "Idéal pour jouer en famille ou entre amis.|Piles non incluses.|"
                   "Un jouet {word} pour des heures d'amusement."),
    "baby": _words("Doux pour la peau délicate de bébé.|Lavable en machine à 30°.|Conforme aux normes EN71.|"
                   "Taille : 0-6 mois, 6-12 mois, 12-24 mois."),
    "furniture": _words("Montage facile, notice incluse.|Bois massif traité pour durer.|"
                        "Apportera une touche moderne à votre intérieur.|Charge maximale : {n}0 kg."),
    "figurines": _words("Figurine livrée dans sa boîte d'origine.|Objet de collection, pas un jouet.|"
                        "Peinte à la main, détails réalistes.|Hauteur : {k}0 cm environ."),
}

BOOK_LINKS = _words("De|Et|Pour|Sur|Dans|Sans|Contre|Ou|Face À")
PLACEHOLDER_NAMES = ("{n}", "{k}", "{num}", "{year}", "{date}", "{ref}", "{dim}", "{size}")

# Markers that make the generated HTML look like the marketplace's (and that a cleaner must strip).
HTML_ENTITIES = {"'": "&#39;", "é": "&eacute;", "è": "&egrave;", "à": "&agrave;", '"': "&quot;"}


@dataclass(frozen=True)
class Vocabulary:
    """Where a row's words come from: family_code's family words and class_codes' own words."""

    family_code: int
    class_codes: tuple[int, ...]


@dataclass(frozen=True)
class ProductText:
    """One product's generated texts; description is None when the row has none."""

    designation: str
    description: str | None
    language: str


@functools.lru_cache(maxsize=None)
def families_of(code: int) -> tuple[str, ...]:
    """Names of the families a class belongs to."""
    return tuple(name for name, codes in FAMILIES.items() if code in codes)


@functools.lru_cache(maxsize=None)
def siblings_of(code: int) -> tuple[int, ...]:
    """Classes sharing at least one family with the given class."""
    return tuple(sorted({other for name in families_of(code) for other in FAMILIES[name] if other != code}))


def _make_class_brands(code: int, count: int = 5) -> tuple[str, ...]:
    """A few fixed invented brand names per class (seeded by the code, so stable across runs)."""
    rng = random.Random(f"brands:{code}")
    return tuple(_brand_from(rng) for _ in range(count))


def _brand_from(rng: random.Random) -> str:
    """An invented brand name of two or three syllables."""
    syllables = rng.choices(BRAND_SYLLABLES, k=rng.randrange(2, 4))
    return "".join(syllables).capitalize()


CLASS_BRANDS = {code: _make_class_brands(code) for code in CODES}


def pick(options, rng: random.Random) -> str:
    """One element of a sequence, chosen with the row's generator."""
    return options[rng.randrange(len(options))]


def fill_placeholders(phrase: str, rng: random.Random) -> str:
    """Replace {n}, {year}, {ref}... by random numbers, dates, references and dimensions."""
    if "{" not in phrase:
        return phrase
    values = {
        "{n}": lambda: str(rng.randrange(2, 60)),
        "{k}": lambda: str(rng.randrange(2, 13)),
        "{num}": lambda: str(rng.randrange(1, 1000)),
        "{year}": lambda: str(rng.randrange(1920, 2020)),
        "{date}": lambda: f"{rng.randrange(1, 29):02d}/{rng.randrange(1, 13):02d}/{rng.randrange(1935, 1995)}",
        "{ref}": lambda: make_reference(rng),
        "{dim}": lambda: make_dimension(rng),
        "{size}": lambda: pick(SIZES, rng),
    }
    for name in PLACEHOLDER_NAMES:
        while name in phrase:
            phrase = phrase.replace(name, values[name](), 1)
    return phrase


def make_reference(rng: random.Random) -> str:
    """A seller reference such as 'Kx-Fr019' or 'Tuv04127' (letters and digits)."""
    letters = "".join(chr(ord("A") + rng.randrange(26)) for _ in range(rng.randrange(2, 4)))
    digits = rng.randrange(1, 100000)
    if rng.random() < 0.5:
        return f"{letters.capitalize()}{digits:03d}"
    return f"{letters[:2].capitalize()}-Fr{digits % 1000:03d}"


def make_dimension(rng: random.Random) -> str:
    """A catalogue dimension such as '90cm', '45 X 45 Cm' or '120x60x75cm'."""
    a, b, c = (rng.randrange(5, 250) for _ in range(3))
    form = rng.randrange(3)
    if form == 0:
        return f"{a}cm"
    if form == 1:
        return f"{a} X {b} Cm"
    return f"{a}x{b}x{c}cm"


def choose_language(code: int, rng: random.Random) -> str:
    """'fr', 'en' or 'de' for one row, with the class's import/translation rates."""
    draw = rng.random()
    if draw < ENGLISH_RATE.get(code, 0.0) and code in CLASS_WORDS_EN:
        return "en"
    if draw > 1.0 - GERMAN_RATE.get(code, 0.0) and code in CLASS_WORDS_DE:
        return "de"
    return "fr"


def choose_vocabulary(code: int, rng: random.Random) -> Vocabulary:
    """Whose words a row uses: its class's, a sibling's, a mix of both, or only its family's."""
    siblings = siblings_of(code)
    draw = rng.random()
    if siblings and draw < SIBLING_TEXT_RATE:
        sibling = pick(siblings, rng)
        return Vocabulary(family_code=sibling, class_codes=(sibling,))
    if siblings and draw < SIBLING_TEXT_RATE + MIXED_TEXT_RATE:
        return Vocabulary(family_code=code, class_codes=(code, pick(siblings, rng)))
    if draw > 1.0 - VAGUE_TEXT_RATE:
        return Vocabulary(family_code=code, class_codes=())
    return Vocabulary(family_code=code, class_codes=(code,))


def class_word(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """A phrase specific to the class, in the row's language when a translated list exists."""
    if not vocab.class_codes:
        return family_word(vocab, language, rng)
    source = pick(vocab.class_codes, rng)
    translated = {"en": CLASS_WORDS_EN, "de": CLASS_WORDS_DE}.get(language, {})
    # Translated listings still mix in French catalogue words, as marketplace imports do.
    if source in translated and rng.random() < 0.75:
        return fill_placeholders(pick(translated[source], rng), rng)
    return fill_placeholders(pick(CLASS_WORDS[source], rng), rng)


def family_word(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """A word shared by the class's family (falls back to generic words for loners)."""
    families = families_of(vocab.family_code)
    if not families:
        return generic_word(language, rng)
    family = pick(families, rng)
    if language == "en" and family in FAMILY_WORDS_EN and rng.random() < 0.7:
        return fill_placeholders(pick(FAMILY_WORDS_EN[family], rng), rng)
    return fill_placeholders(pick(FAMILY_WORDS[family], rng), rng)


def generic_word(language: str, rng: random.Random) -> str:
    """A catalogue word that says nothing about the class."""
    return pick(GENERIC_WORDS[language], rng)


def attribute_word(language: str, rng: random.Random) -> str:
    """A color, material, size, quantity, reference or invented brand."""
    kind = rng.randrange(5)
    if kind == 0:
        return pick(COLORS[language], rng)
    if kind == 1:
        return pick(MATERIALS, rng)
    if kind == 2:
        return _brand_from(rng)
    return fill_placeholders(pick(ATTRIBUTE_PATTERNS, rng), rng)


def brand_for(code: int, rng: random.Random) -> str:
    """A brand: often one of the class's usual brands, otherwise a one-off invented name."""
    if rng.random() < CLASS_BRAND_RATE:
        return pick(CLASS_BRANDS[code], rng)
    return _brand_from(rng)


def book_phrase(rng: random.Random) -> str:
    """A book-like title such as 'Les Secrets De La Nuit' from the shared books vocabulary."""
    topics = FAMILY_WORDS["books"]
    phrase = pick(topics, rng)
    if rng.random() < 0.6:
        phrase = f"{phrase} {pick(BOOK_LINKS, rng)} {pick(topics, rng)}"
    return phrase


def title_word(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """One more title word, drawn from the class, family, generic or attribute pools."""
    kind = rng.choices(TITLE_WORD_POOLS, weights=TITLE_WORD_WEIGHTS)[0]
    if kind == "class":
        return class_word(vocab, language, rng)
    if kind == "family":
        return family_word(vocab, language, rng)
    if kind == "generic":
        return generic_word(language, rng)
    return attribute_word(language, rng)


def title_head(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """The title's first phrase: usually what the product is, sometimes only its family."""
    if vocab.family_code in FAMILIES["books"] and language == "fr" and rng.random() < 0.55:
        return book_phrase(rng)
    if rng.random() < VAGUE_HEAD_RATE:
        return family_word(vocab, language, rng)
    return class_word(vocab, language, rng)


def apply_title_case(text: str, rng: random.Random) -> str:
    """Most listings capitalise every word; some are lower case or shouted."""
    draw = rng.random()
    if draw < UPPER_CASE_RATE:
        return text.upper()
    if draw < TITLE_CASE_RATE:
        return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))
    return text[:1].upper() + text[1:].lower()


def title_length_target(rng: random.Random) -> int:
    """How many characters this title aims for (lognormal around the real median)."""
    length = TITLE_MEDIAN_CHARS * math.exp(TITLE_LENGTH_SIGMA * rng.gauss(0.0, 1.0))
    return int(min(max(length, TITLE_MIN_CHARS), TITLE_MAX_CHARS))


def make_title(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """A catalogue title: head phrase, brand, mixed class/family/generic words, attributes."""
    target = title_length_target(rng)
    parts = [title_head(vocab, language, rng)]
    if rng.random() < BRAND_RATE:
        parts.insert(0 if rng.random() < 0.6 else 1, brand_for(vocab.family_code, rng))
    while len(" ".join(parts)) < target:
        parts.append(title_word(vocab, language, rng))
    title = " ".join(parts)
    if len(title) > TITLE_MAX_CHARS:
        title = title[:TITLE_MAX_CHARS].rsplit(" ", 1)[0]
    if rng.random() < SELLER_SUFFIX_RATE:
        title += f"_{_brand_from(rng)}{rng.randrange(100, 9999)}"
    return apply_title_case(title, rng)


def geometric(p: float, rng: random.Random) -> int:
    """A geometric draw (number of trials up to the first success, at least 1)."""
    return 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - p))


def class_sentence(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """A sentence made of the class's and family's own words (the informative part)."""
    words = [class_word(vocab, language, rng)]
    for _ in range(rng.randrange(1, 5)):
        words.append(family_word(vocab, language, rng) if rng.random() < 0.5 else generic_word(language, rng))
    words.insert(rng.randrange(len(words) + 1), class_word(vocab, language, rng))
    sentence = " ".join(words).lower()
    return sentence[:1].upper() + sentence[1:] + "."


def boilerplate_sentence(vocab: Vocabulary, language: str, rng: random.Random) -> str:
    """A marketplace sentence (shipping, quality, sizes) with a few words of the product slotted in."""
    template = pick(DESCRIPTION_SENTENCES[language], rng)
    families = [name for name in families_of(vocab.family_code) if name in FAMILY_SENTENCES]
    if families and rng.random() < FAMILY_SENTENCE_RATE:
        template = pick(FAMILY_SENTENCES[pick(families, rng)], rng)
    replacements = {
        "{word}": lambda: (class_word if rng.random() < 0.5 else family_word)(vocab, language, rng).lower(),
        "{word2}": lambda: generic_word(language, rng).lower(),
        "{material}": lambda: pick(MATERIALS, rng).lower(),
        "{color}": lambda: pick(COLORS[language], rng).lower(),
    }
    for name, value in replacements.items():
        while name in template:
            template = template.replace(name, value(), 1)
    return fill_placeholders(template, rng)


def description_sentences(vocab: Vocabulary, language: str, title: str, rng: random.Random) -> list[str]:
    """The plain sentences of one description (sometimes opening with the title again)."""
    count = min(geometric(DESCRIPTION_SENTENCE_P, rng), DESCRIPTION_MAX_SENTENCES)
    sentences = [title] if rng.random() < REPEAT_TITLE_RATE else []
    for _ in range(count):
        if rng.random() < CLASS_SENTENCE_RATE:
            sentences.append(class_sentence(vocab, language, rng))
        else:
            sentences.append(boilerplate_sentence(vocab, language, rng))
    return sentences


def add_html_tags(sentences: list[str], rng: random.Random) -> str:
    """Join sentences the way rich-content listings do: <br />, <p>, <li> and bold headings."""
    style = rng.randrange(4)
    if style == 0:
        return "<br />".join(sentences)
    if style == 1:
        return " ".join(f"<p>{sentence}</p>" for sentence in sentences)
    if style == 2:
        items = "".join(f"<li>{sentence}</li>" for sentence in sentences[1:])
        return f"<b>{sentences[0]}</b><br /><ul>{items}</ul>"
    return f"<strong>{sentences[0]}</strong><br /> " + "<br /><br />".join(sentences[1:])


def add_html_entities(text: str, rng: random.Random) -> str:
    """Escape apostrophes and some accents as HTML entities; add one when none applies."""
    escaped = text.replace("'", HTML_ENTITIES["'"])
    for char in ("é", "è", "à"):
        if rng.random() < 0.15:
            escaped = escaped.replace(char, HTML_ENTITIES[char])
    if escaped == text:
        cut = text.find(" ", len(text) // 2)
        filler = "&nbsp;" if rng.random() < 0.6 else "&amp;"
        escaped = text + f" {filler}" if cut < 0 else f"{text[:cut]} {filler}{text[cut:]}"
    return escaped


def make_description(vocab: Vocabulary, language: str, title: str, rng: random.Random) -> str:
    """A description: boilerplate plus class sentences, optionally with HTML tags and entities."""
    if rng.random() > DESCRIPTION_SAME_LANGUAGE_RATE:
        language = "fr"
    sentences = description_sentences(vocab, language, title, rng) or [title]
    if rng.random() < HTML_TAG_RATE and len(sentences) > 1:
        text = add_html_tags(sentences, rng)
    else:
        text = " ".join(sentences)
    if rng.random() < HTML_ENTITY_RATE:
        text = add_html_entities(text, rng)
    return text


def make_product_text(code: int, rng: random.Random) -> ProductText:
    """Title, optional description and language of one product of the given class."""
    language = choose_language(code, rng)
    vocab = choose_vocabulary(code, rng)
    title = make_title(vocab, language, rng)
    missing_rate = MISSING_DESCRIPTION_RATE.get(code, DEFAULT_MISSING_DESCRIPTION_RATE)
    description = None if rng.random() < missing_rate else make_description(vocab, language, title, rng)
    return ProductText(designation=title, description=description, language=language)
